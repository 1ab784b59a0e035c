"""Reliability of delivery with Redis Streams and `gateway worker` processes: real Redis, real
worker processes, real HTTP receivers on loopback. The gateway (in this process) writes and
relays to the stream; the workers match and deliver."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from gateway.bench.services import own_redis
from tests.conftest import client_for, need_service, running_app
from tests.subscriptions.helpers import create, patient, subscription, wait_status
from tests.subscriptions.receiver import Receiver
from tests.subscriptions.workers import Worker

pytestmark = pytest.mark.redis


@contextlib.asynccontextmanager
async def gateway(database_url: str, redis_url: str):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    async with running_app(
        database_url, redis_url=redis_url, redis_prefix=prefix, worker_inline="off"
    ) as app:
        async with client_for(app) as client:
            yield client, prefix


def in_order(numbers: list[int]) -> bool:
    return numbers == sorted(numbers)


async def test_worker_killed_mid_delivery_then_restarted_loses_nothing(database_url):
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    receiver = await Receiver(delay=0.15).start()
    workers: list[Worker] = []
    try:
        async with gateway(database_url, redis_url) as (client, prefix):
            workers.append(await asyncio.to_thread(Worker(database_url, redis_url, prefix).start))
            sub = await create(client, subscription(receiver.url, payload=None))
            await wait_status(client, sub["id"], "active")
            for i in range(20):
                await create(client, patient(given=f"戊{i}"))
            await receiver.wait(lambda: len(receiver.got) >= 3)
            workers[0].kill()  # in the middle of its deliveries
            seen = len(receiver.got)
            workers.append(await asyncio.to_thread(Worker(database_url, redis_url, prefix).start))
            await receiver.wait(lambda: set(receiver.numbers()) >= set(range(1, 21)), timeout=60)
            numbers = receiver.numbers()
            assert seen < 20
            assert set(numbers) == set(range(1, 21))  # every event at least once
            assert in_order(numbers)  # a repeat is the one in flight at the kill, never older
            assert len(numbers) - 20 <= 1
    finally:
        for w in workers:
            w.stop()
        await receiver.stop()


async def test_receiver_down_then_back_gets_every_pending_event_in_order(database_url):
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    receiver = await Receiver().start()
    worker = None
    try:
        async with gateway(database_url, redis_url) as (client, prefix):
            worker = await asyncio.to_thread(Worker(database_url, redis_url, prefix).start)
            sub = await create(client, subscription(receiver.url, content="id-only"))
            await wait_status(client, sub["id"], "active")
            await create(client, patient(given="己0"))
            await receiver.wait(lambda: receiver.numbers() == [1])
            await receiver.stop()  # down: connections refused
            for i in range(1, 15):
                await create(client, patient(given=f"己{i}"))
            await asyncio.sleep(1.5)  # retries fail meanwhile
            back = Receiver()
            back.port, back.url = receiver.port, receiver.url
            receiver = await back.start()
            await receiver.wait(lambda: len(receiver.numbers()) >= 14, timeout=60)
            assert receiver.numbers() == list(range(2, 16))
    finally:
        if worker is not None:
            worker.stop()
        await receiver.stop()


async def test_two_workers_deliver_once_each_and_a_slow_receiver_holds_up_nobody(database_url):
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    fast = [await Receiver().start() for _ in range(2)]
    slow = await Receiver(delay=0.25).start()
    workers: list[Worker] = []
    try:
        async with gateway(database_url, redis_url) as (client, prefix):
            for _ in range(2):
                workers.append(
                    await asyncio.to_thread(Worker(database_url, redis_url, prefix).start)
                )
            subs = [await create(client, subscription(r.url, payload=None)) for r in [*fast, slow]]
            for s in subs:
                await wait_status(client, s["id"], "active")

            async def write(n: int) -> None:
                for i in range(n):
                    await create(client, patient(given=f"庚{i}"))

            await asyncio.gather(*(write(10) for _ in range(4)))  # 40 writes, 4 at a time
            for r in fast:
                await r.wait(lambda r=r: len(r.got) >= 40, timeout=30)
            assert len(slow.got) < 40  # still working through its backlog
            await slow.wait(lambda: len(slow.got) >= 40, timeout=60)
            await asyncio.sleep(0.5)
            for r in [*fast, slow]:
                assert r.numbers() == list(range(1, 41))  # each once, in order
    finally:
        for w in workers:
            w.stop()
        for r in [*fast, slow]:
            await r.stop()


async def test_redis_down_during_writes_then_everything_is_delivered(database_url):
    receiver = await Receiver().start()
    worker = None
    try:
        with own_redis() as redis_server:
            async with gateway(database_url, redis_server.url) as (client, prefix):
                worker = await asyncio.to_thread(
                    Worker(database_url, redis_server.url, prefix).start
                )
                sub = await create(client, subscription(receiver.url, payload=None))
                await wait_status(client, sub["id"], "active")
                await create(client, patient(given="辛0"))
                await receiver.wait(lambda: receiver.numbers() == [1])
                await asyncio.to_thread(redis_server.stop)
                for i in range(1, 11):  # writes go on: the outbox holds their events
                    await create(client, patient(given=f"辛{i}"))
                await asyncio.to_thread(redis_server.start)
                await receiver.wait(lambda: len(receiver.numbers()) >= 11, timeout=90)
                assert receiver.numbers() == list(range(1, 12))
    finally:
        if worker is not None:
            worker.stop()
        await receiver.stop()
