"""`python -m gateway.bench --subscriptions`: notification latency and throughput, end to end.

Setup: PostgreSQL (a throwaway database) and Redis (GATEWAY_BENCH_REDIS_URL, default the local
server's database 15, under a key prefix of its own), `gateway serve` (1 worker) and `gateway
worker` processes, 10 rest-hook subscriptions (criteria `Patient?family=张`, id-only
notification Bundles) to 10 receivers on loopback (one uvicorn server, one path each, in this
process). Every Patient written is one notification to each of the 10.

- latency: writes at a steady rate (default 40/s, 400 notifications/s); for each notification,
  the time from the write's 201 (committed) to its arrival at the receiver: median, p95;
- throughput: writes as fast as 8 clients go; notifications arrived per second, from the first
  write to the last notification (sustained: every notification counted, none may be missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from rich.table import Table

from gateway.bench.clients import Connection, run_clients
from gateway.bench.server import bench_env, gateway_process, throwaway_postgres

HEADERS = {"content-type": "application/fhir+json", "Prefer": "return=minimal"}
RECEIVERS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receivers:
    """One uvicorn server on loopback, `RECEIVERS` endpoints (/hook/0 …): the arrival time of
    every notification event, by subscriber and resource id."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.arrived: list[dict[str, float]] = [{} for _ in range(RECEIVERS)]
        self.lock = threading.Lock()
        self.requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{i}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        now = time.time()
        which = int(scope["path"].rsplit("/", 1)[-1])
        bundle = orjson.loads(body) if body else {}
        ids = [e["fullUrl"].rsplit("/", 1)[-1] for e in bundle.get("entry", [])[1:]]
        with self.lock:
            self.requests += 1
            seen = self.arrived[which]
            for rid in ids:
                seen.setdefault(rid, now)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def start(self) -> None:
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            access_log=False,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()))  # type: ignore[union-attr]
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def count(self) -> int:
        with self.lock:
            return sum(len(a) for a in self.arrived)


@contextlib.contextmanager
def workers(database_url: str, redis_url: str, prefix: str, n: int) -> Iterator[None]:
    env = bench_env(
        {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_REDIS_PREFIX": prefix,
            "GATEWAY_LOG_LEVEL": "info",
            "GATEWAY_VALIDATION_WORKERS": "0",
        }
    )
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for _ in range(n):
            log = Path(tempfile.mkstemp(prefix="gw-worker-", suffix=".log")[1])
            with open(log, "ab") as err:
                p = subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
            procs.append((p, log))
        deadline = time.time() + 60
        for p, log in procs:
            while "worker running" not in log.read_text(errors="replace"):
                if p.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"worker did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
        yield
    finally:
        for p, log in procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(20)
            if p.poll() is None:
                p.kill()
            log.unlink(missing_ok=True)


def _patient(i: int, run: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": f"SB{run}{i:08d}"}],
            "name": [{"family": "张", "given": [f"订{i}"]}],
            "gender": "female",
            "birthDate": "1970-01-01",
        }
    )


def _subscribe(conn: Connection, url: str) -> str:
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "基准：签约居民通知",
        "criteria": "Patient?family=张",
        "channel": {
            "type": "rest-hook",
            "endpoint": url,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/uv/subscriptions-backport/"
                        "StructureDefinition/backport-payload-content",
                        "valueCode": "id-only",
                    }
                ]
            },
        },
    }
    r = conn.request(
        "POST", "Subscription", orjson.dumps(sub), {"content-type": HEADERS["content-type"]}
    )
    assert r.status == 201, r.body[:500]
    return str(orjson.loads(r.body)["id"])


def _wait_active(conn: Connection, ids: list[str], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    for sid in ids:
        while orjson.loads(conn.request("GET", f"Subscription/{sid}").body)["status"] != "active":
            if time.time() > deadline:
                raise RuntimeError(f"Subscription/{sid} did not become active")
            time.sleep(0.05)


def _write(base: str, clients: int, n: int, run: str, rate: float | None) -> dict[str, float]:
    """n Patients; the time each write's 201 arrived, by id."""
    committed: dict[str, float] = {}
    lock = threading.Lock()
    start = time.time()

    def work(c: Connection, i: int) -> None:
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        r = c.request("POST", "Patient", _patient(i, run), HEADERS)
        assert r.status == 201, r.body[:500]
        rid = r.headers["location"].split("/")[-3]
        with lock:
            committed[rid] = time.time()

    run_clients(base, clients, n, work)
    return committed


def _wait_all(rx: Receivers, expected: int, timeout: float) -> float:
    deadline = time.time() + timeout
    while rx.count() < expected:
        if time.time() > deadline:
            raise RuntimeError(f"only {rx.count()} of {expected} notifications arrived")
        time.sleep(0.01)
    return time.time()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(
    pg_admin: str,
    redis_url: str,
    latency_writes: int = 600,
    rate: float = 40.0,
    throughput_writes: int = 3000,
    worker_count: int = 2,
) -> Table:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    rx = Receivers()
    rx.start()
    rows: list[tuple[str, str]] = []
    try:
        with throwaway_postgres(pg_admin) as url:
            extra = {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": prefix}
            with gateway_process(url, 1, extra) as server:
                with workers(url, redis_url, prefix, worker_count):
                    conn = Connection(server.base)
                    ids = [_subscribe(conn, rx.url(i)) for i in range(RECEIVERS)]
                    _wait_active(conn, ids)
                    conn.close()
                    _write(server.base, 2, 50, "warm", None)  # warm-up, not counted
                    _wait_all(rx, 50 * RECEIVERS, 60)

                    committed = _write(server.base, 4, latency_writes, "lat", rate)
                    _wait_all(rx, (50 + latency_writes) * RECEIVERS, 120)
                    lat = [
                        (arrived[rid] - t) * 1000
                        for arrived in rx.arrived
                        for rid, t in committed.items()
                    ]
                    rows.append(("latency: writes/s (steady)", f"{rate:.0f}"))
                    rows.append(("latency: median ms", f"{_quantile(lat, 0.5):.1f}"))
                    rows.append(("latency: p95 ms", f"{_quantile(lat, 0.95):.1f}"))

                    before = rx.count()
                    t0 = time.time()
                    _write(server.base, 8, throughput_writes, "tp", None)
                    t_written = time.time()
                    expected = before + throughput_writes * RECEIVERS
                    t_end = _wait_all(rx, expected, 300)
                    rows.append(
                        ("throughput: writes/s", f"{throughput_writes / (t_written - t0):.0f}")
                    )
                    rows.append(
                        (
                            f"throughput: notifications/s to {RECEIVERS} subscribers",
                            f"{throughput_writes * RECEIVERS / (t_end - t0):.0f}",
                        )
                    )
                    rows.append(("notification requests received", str(rx.requests)))
    finally:
        rx.stop()
    table = Table(
        title=f"Subscriptions: {RECEIVERS} rest-hook subscribers, id-only Bundles, Redis, "
        f"PostgreSQL, {worker_count} workers ({os.cpu_count()} cores)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    return table
