"""The database or the event bus going away under load, on instances this suite owns:
PostgreSQL stopped (503 with Retry-After meanwhile, readiness false, recovery without a
restart, nothing acknowledged lost); Redis stopped, then frozen (writes go on, and every
committed event reaches the stream once Redis is back)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
import redis

from gateway.bench.server import migrate_in_thread
from gateway.bench.services import own_postgres, own_redis
from gateway.events.bus import STREAM
from tests.faults.conftest import need_postgres_binaries, running_gateway
from tests.faults.workload import FHIR

pytestmark = pytest.mark.faults


@dataclass
class Writes:
    acknowledged: list[str] = field(default_factory=list)
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)  # t, status, RA

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> set[int]:
        return {s for t, s, _ in self.answers if since <= t <= until}


def writer(base: str, writes: Writes, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers=FHIR, timeout=60) as http:
        while not stop.is_set():
            body = {"resourceType": "Patient", "name": [{"text": "王五"}]}
            try:
                r = http.post("/Patient", json=body)
            except httpx.HTTPError as exc:  # the gateway itself never goes away here
                writes.answers.append((time.monotonic(), 0, type(exc).__name__))
                continue
            writes.answers.append((time.monotonic(), r.status_code, r.headers.get("retry-after")))
            if r.status_code == 201:
                writes.acknowledged.append(r.json()["id"])
            elif r.status_code == 503:
                assert r.json()["resourceType"] == "OperationOutcome"
                time.sleep(0.05)


def start_writers(base: str, writes: Writes, n: int = 3) -> tuple[threading.Event, list]:
    stop = threading.Event()
    threads = [threading.Thread(target=writer, args=(base, writes, stop)) for _ in range(n)]
    for t in threads:
        t.start()
    return stop, threads


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_postgres_stopped_means_503_then_recovery_without_restart():
    need_postgres_binaries()
    with own_postgres() as pg:
        migrate_in_thread(pg.url)
        with running_gateway(pg.url) as gateway:
            writes = Writes()
            stop, threads = start_writers(gateway.base, writes)
            try:
                assert wait_for(lambda: len(writes.acknowledged) >= 10, 30)
                pg.stop()
                down = time.monotonic()
                time.sleep(3)
                ready = httpx.get(f"{gateway.root}/readyz", timeout=10)
                assert ready.status_code == 503 and ready.headers["retry-after"]
                read = httpx.get(f"{gateway.base}/Patient/{writes.acknowledged[0]}", timeout=30)
                assert read.status_code == 503 and read.headers["retry-after"]
                # Every answer while it was down: 503 with Retry-After, never a 500.
                during = [a for a in writes.answers if a[0] > down + 0.5]
                assert during and {s for _, s, _ in during} == {503}, writes.statuses(down)
                assert all(ra and int(ra) > 0 for _, _, ra in during)
                pg.start()
                up = time.monotonic()
                assert wait_for(lambda: writes.statuses(since=up + 0.1) & {201}, 30)
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            assert httpx.get(f"{gateway.root}/readyz", timeout=10).status_code == 200
            assert writes.statuses() <= {201, 503}, writes.statuses()
            with httpx.Client(base_url=gateway.base, timeout=30) as http:
                for pid in writes.acknowledged:  # nothing acknowledged was lost
                    assert http.get(f"/Patient/{pid}").status_code == 200, pid
            assert "Traceback" not in gateway.log()


def stream_ids(url: str) -> set[str]:
    client = redis.Redis.from_url(url)
    try:
        return {f[b"id"].decode() for _, f in client.xrange(STREAM)}
    finally:
        client.close()


def test_redis_stopped_or_frozen_writes_go_on_and_events_arrive_later(fault_database):
    with own_redis() as bus:
        with running_gateway(fault_database, GATEWAY_REDIS_URL=bus.url) as gateway:
            writes = Writes()
            stop, threads = start_writers(gateway.base, writes)
            try:
                assert wait_for(lambda: len(writes.acknowledged) >= 10, 30)
                bus.stop()
                stopped_at = len(writes.acknowledged)
                assert wait_for(lambda: len(writes.acknowledged) >= stopped_at + 20, 30)
                bus.start()
                bus.freeze()
                frozen_at = len(writes.acknowledged)
                assert wait_for(lambda: len(writes.acknowledged) >= frozen_at + 20, 30)
                time.sleep(2.5)  # past the client's socket timeout
                bus.thaw()
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            assert writes.statuses() == {201}, writes.statuses()  # writes never waited on Redis
            # Every committed write's event reaches the stream once Redis is back.
            expected = set(writes.acknowledged)
            assert wait_for(lambda: expected <= stream_ids(bus.url), 60, step=0.5), len(
                expected - stream_ids(bus.url)
            )
            log = gateway.log()
            assert "Traceback" not in log
            assert 1 <= log.count("event relay paused") <= 4, log[-2000:]
