"""Benchmark clients: N keep-alive HTTP/1.1 connections, each issuing requests one after another.

The standard library's http.client, one thread per connection: the benchmarks measure the
gateway, and httpx's async client alone adds ~2.5 ms to every request on this machine class
(GET /Patient/{id}: 1.9 ms median with http.client, 4.5 ms with httpx.AsyncClient).
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    def __init__(self, base: str):
        parts = urlsplit(base)
        self.path = parts.path.rstrip("/")
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, 600)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`url` relative to the base ("Patient/1", "?_type=…", "" for the base itself)."""
        target = f"{self.path}/{url}" if url and not url.startswith("?") else self.path + url
        self._conn.request(method, target, body=body, headers=headers or {})
        r = self._conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def close(self) -> None:
        self._conn.close()


Work = Callable[[Connection, int], None]


def run_clients(base: str, clients: int, total: int, work: Work) -> tuple[float, list[float]]:
    """`total` calls of work(connection, i), shared by `clients` connections.
    Returns (seconds, per-call latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    errors: list[BaseException] = []

    def loop() -> None:
        conn = Connection(base)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None or errors:
                    return
                t = time.perf_counter()
                work(conn, i)
                lat = time.perf_counter() - t
                with lock:
                    latencies.append(lat)
        except BaseException as exc:  # surface a failed request in the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, latencies


def median_p95_ms(latencies: list[float]) -> tuple[float, float]:
    lat = sorted(latencies)
    return statistics.median(lat) * 1000, lat[max(0, int(len(lat) * 0.95) - 1)] * 1000
