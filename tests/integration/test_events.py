"""Every committed write leaves an outbox row in the same transaction; the relay publishes it
after commit to the bus: in-process by default, a Redis Stream in production."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from gateway.app import redis_client
from gateway.events.bus import STREAM, InProcessBus, RedisStreamBus
from gateway.events.relay import OutboxRelay
from gateway.store.tables import outbox
from tests.api.test_crud import PATIENT
from tests.conftest import need_service


@pytest.fixture
async def app_relay_paused(app):
    """Stop the app's own relay so this test's relay sees every event."""
    await app.state.relay.stop()
    yield
    app.state.relay.start()


async def _outbox_count(core) -> int:
    async with core.store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()


async def test_writes_and_outbox_commit_together(client, core, app_relay_paused):
    pid = (await client.post("/Patient", json=PATIENT)).json()["id"]
    await client.put(f"/Patient/{pid}", json={**PATIENT, "id": pid, "gender": "unknown"})
    await client.delete(f"/Patient/{pid}")
    assert await _outbox_count(core) == 3
    # A failing transaction writes nothing, outbox included.
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Patient", "gender": 1},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    assert (await client.post("", json=bad)).status_code == 400
    assert await _outbox_count(core) == 3


async def test_in_process_bus_receives_committed_events_in_order(client, core, app_relay_paused):
    bus = InProcessBus()
    seen = []

    async def on_event(event):
        seen.append((event.res_type, event.version, event.action))

    bus.subscribe(on_event)
    relay = OutboxRelay(core.store.engine, bus)
    await relay.drain()  # whatever the app's own relay left
    seen.clear()
    pid = (await client.post("/Patient", json=PATIENT)).json()["id"]
    await client.put(f"/Patient/{pid}", json={**PATIENT, "id": pid})
    await client.delete(f"/Patient/{pid}")
    await relay.drain()
    assert seen == [("Patient", 1, "create"), ("Patient", 2, "update"), ("Patient", 3, "delete")]
    assert await relay.drain() == 0  # each row is published once
    assert await _outbox_count(core) == 0  # and then removed


async def test_running_relay_takes_one_batch_per_wake_up(client, core, app_relay_paused):
    """Woken by commits, the relay publishes what is there and stops at a short batch: no
    second transaction to find the outbox empty (one per wake-up under a stream of writes).
    A full batch is followed by the next."""
    bus = InProcessBus()
    seen: list[int] = []

    async def on_event(event):
        seen.append(event.version)

    bus.subscribe(on_event)
    relay = OutboxRelay(core.store.engine, bus, batch=3, linger=0)
    await relay.drain()  # whatever the app's own relay left
    seen.clear()
    batches: list[int] = []
    drain_once = relay.drain_once

    async def counted() -> int:
        batches.append(await drain_once())
        return batches[-1]

    relay.drain_once = counted  # type: ignore[method-assign]
    pid = (await client.post("/Patient", json=PATIENT)).json()["id"]
    for _ in range(4):
        await client.put(f"/Patient/{pid}", json={**PATIENT, "id": pid})
    relay.start()
    relay.notify([])
    for _ in range(200):
        if len(seen) == 5:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # time for a needless third
    taken = list(batches)
    await relay.stop()  # (which drains once more: what came before the stop)
    assert seen == [1, 2, 3, 4, 5]
    assert taken == [3, 2]  # a full batch, then a short one: done
    assert await _outbox_count(core) == 0


async def test_redis_stream_bus_publishes_events(client, core, app_relay_paused):
    url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    redis = aioredis.from_url(url)
    stream = f"{STREAM}:test"
    await redis.delete(stream)
    relay = OutboxRelay(core.store.engine, RedisStreamBus(redis, stream=stream))
    await relay.drain()
    await redis.delete(stream)
    pid = (await client.post("/Patient", json=PATIENT)).json()["id"]
    await relay.drain()
    entries = await redis.xrange(stream)
    fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
    assert {
        "type": "Patient",
        "id": pid,
        "version": "1",
        "action": "create",
        "principal": "anonymous",
    } in fields
    await redis.delete(stream)
    await redis.aclose()


async def test_relay_outage_logs_state_changes_and_delivers_afterwards(
    client, core, app_relay_paused, caplog
):
    """Redis unreachable: writes go on, the relay says so once (not a traceback per retry),
    and once Redis answers every committed event reaches the stream, in order."""
    url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    stream = f"{STREAM}:outage"
    good = redis_client(url)
    await good.delete(stream)
    await OutboxRelay(core.store.engine, InProcessBus()).drain()  # what earlier tests left
    relay = OutboxRelay(
        core.store.engine,
        RedisStreamBus(redis_client("redis://127.0.0.1:1/0"), stream=stream),  # nobody there
        interval=0.05,
        linger=0,
        max_backoff=0.1,
    )
    caplog.set_level(logging.WARNING, logger="gateway.events.relay")
    relay.start()
    try:
        ids = []
        for _ in range(5):
            r = await client.post("/Patient", json=PATIENT)
            assert r.status_code == 201  # writes go on without the bus
            ids.append(r.json()["id"])
        await asyncio.sleep(1.0)  # several retries
        paused = [m for m in caplog.messages if "relay paused" in m]
        assert len(paused) == 1, caplog.messages
        assert not any(r.exc_info for r in caplog.records)
        assert await _outbox_count(core) == 5  # kept, not lost
        relay.bus = RedisStreamBus(good, stream=stream)  # Redis is back
        for _ in range(100):
            if await _outbox_count(core) == 0:
                break
            await asyncio.sleep(0.05)
        assert any("relay resumed" in m for m in caplog.messages), caplog.messages
    finally:
        await relay.stop()
    entries = await good.xrange(stream)
    assert [f[b"id"].decode() for _, f in entries] == ids
    await good.delete(stream)
    await good.aclose()
