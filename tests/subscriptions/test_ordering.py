"""Order per resource on the bus with several relays draining one outbox at once (replicas and
workers on one database): a receiver must never get version n after version n+1. The buses
here are slow and uneven on purpose (a publish takes 0-40 ms), which widens the window in which
one relay's batch could overtake another's (without the relays' turn-taking, this test finds
versions out of order in about every other run)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence

from gateway.events.relay import OutboxRelay
from gateway.store.model import Event
from tests.conftest import client_for, fresh_database, running_app
from tests.subscriptions.helpers import create, patient


class SlowRecorder:
    def __init__(self, log: list[Event]):
        self.log = log

    async def publish(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(random.uniform(0, 0.04))
        self.log.extend(events)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_concurrent_relays_keep_each_resources_versions_in_order(database_url, tmp_path):
    published: list[Event] = []
    async with (
        fresh_database(database_url, tmp_path) as url,  # other relays would take its rows
        running_app(url, worker_inline="off") as app,
    ):
        async with client_for(app) as client:
            engine = app.state.core.store.engine
            relays = [
                OutboxRelay(engine, SlowRecorder(published), batch=7, interval=0.01, linger=0)
                for _ in range(3)
            ]
            app.state.relay.bus.subscribe(lambda e: _record(published, e))
            for r in relays:
                r.start()
            try:
                ids = [(await create(client, patient(given=f"序{i}")))["id"] for i in range(6)]

                async def updater(k: int) -> None:
                    # each updater writes its own resource version after version: version n+1
                    # commits while a relay may still be publishing version n
                    pid = ids[k]
                    for n in range(25):
                        body = {**patient(given=f"序{k}-{n}"), "id": pid}
                        r = await client.put(f"/Patient/{pid}", json=body)
                        assert r.status_code == 200, r.text
                        for relay in relays:
                            relay.notify([])

                await asyncio.gather(*(updater(k) for k in range(6)))
                for relay in relays:
                    await relay.drain()
                await app.state.relay.drain()
            finally:
                for r in relays:
                    await r.stop()
    versions: dict[str, list[int]] = defaultdict(list)
    for e in published:
        if e.res_type == "Patient":
            versions[e.res_id].append(e.version)
    assert sum(len(v) for v in versions.values()) == 6 + 6 * 25  # every version once
    for res_id, seq in versions.items():
        assert seq == sorted(seq), f"Patient/{res_id} published out of order: {seq}"
        assert seq == list(range(1, len(seq) + 1))


async def _record(log: list[Event], event: Event) -> None:
    log.append(event)
