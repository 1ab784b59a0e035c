"""`python -m gateway.bench --bulk`: system `$export` throughput and the worker's memory.

Setup: a throwaway PostgreSQL database (and a SQLite file), `gateway serve` (1 worker) with
Redis (GATEWAY_BENCH_REDIS_URL, a key prefix of its own) and one `gateway worker` process that
runs the export; the Synthea corpus loaded `--bulk-copies` times (transactions; each copy gets
new ids). Then one `GET [base]/$export` (every type, default settings: pages of 500, files of
at most 64 MiB): resources and bytes per second from kick-off to the complete manifest, the
worker's resident memory before, at its peak (sampled every 50 ms) and after; and the download
of every file (MB/s, streamed chunk by chunk).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from rich.table import Table

from gateway.bench.clients import Connection, run_clients
from gateway.bench.server import bench_env, gateway_process, throwaway_postgres, throwaway_sqlite

HEADERS = {"content-type": "application/fhir+json", "Prefer": "return=minimal"}


def _bundles(corpora: Path) -> tuple[list[bytes], list[bytes]]:
    folder = corpora / "synthea-r4"
    info = sorted(p for p in folder.glob("*.json") if "Information" in p.name)
    people = sorted(p for p in folder.glob("*.json") if "Information" not in p.name)
    return [p.read_bytes() for p in info], [p.read_bytes() for p in people]


def _load(base: str, corpora: Path, copies: int) -> None:
    info, people = _bundles(corpora)
    c = Connection(base)
    try:
        for body in info:
            r = c.request("POST", "", body, HEADERS)
            assert r.status == 200, r.body[:300]
    finally:
        c.close()
    bodies = people * copies

    def work(c: Connection, i: int) -> None:
        r = c.request("POST", "", bodies[i], HEADERS)
        assert r.status == 200, r.body[:300]

    run_clients(base, 4, len(bodies), work)


def _export(http: httpx.Client, base: str, query: str = "") -> httpx.Response:
    """Kick off and poll to the manifest."""
    r = http.get(
        f"{base}/$export{query}",
        headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    assert r.status_code == 202, r.text
    status = r.headers["content-location"]
    while True:
        r = http.get(status)
        if r.status_code == 200:
            return r
        assert r.status_code == 202, r.text
        time.sleep(0.1)


class Sampler:
    """Resident memory of one process, every 50 ms, in a thread."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.NoSuchProcess):
                self.peak = max(self.peak, self.rss())
            time.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # start-up: definitions, registries
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run(name: str, url: str, redis_url: str, corpora: Path, copies: int, table: Table) -> None:
    extra = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
    }
    with gateway_process(url, 1, extra) as server:
        _load(server.base, corpora, copies)
        env = {**bench_env(extra), "GATEWAY_DATABASE_URL": url}
        with _worker(env) as worker, httpx.Client(timeout=600) as http:
            _export(http, server.base, "?_type=Organization")  # warm-up: the worker is ready
            sampler = Sampler(worker.pid)
            before = sampler.rss()
            with sampler:
                start = time.monotonic()
                r = _export(http, server.base)
                seconds = time.monotonic() - start
            after = sampler.rss()
            manifest = r.json()
            resources = sum(o["count"] for o in manifest["output"])
            start = time.monotonic()
            size = 0
            for item in manifest["output"]:
                with http.stream("GET", item["url"]) as f:
                    for block in f.iter_bytes():
                        size += len(block)
            download = time.monotonic() - start
        mb = 1024 * 1024
        table.add_row(
            name,
            f"{resources:,}",
            f"{len(manifest['output'])}",
            f"{size / mb:,.1f}",
            f"{resources / seconds:,.0f}",
            f"{size / mb / seconds:,.1f}",
            f"{size / mb / download:,.1f}",
            f"{before / mb:.0f}/{sampler.peak / mb:.0f}/{after / mb:.0f}",
        )


def main_bulk(pg_admin: str, redis_url: str, corpora: Path, copies: int, only: str | None) -> Table:
    table = Table(title=f"Bulk export ({os.cpu_count()} cores; `gateway worker` with Redis)")
    for col in (
        "database",
        "resources",
        "files",
        "MB",
        "export res/s",
        "export MB/s",
        "download MB/s",
        "worker RSS MB (before/peak/after)",
    ):
        table.add_column(col, justify="right")
    if only in (None, "postgres"):
        with throwaway_postgres(pg_admin) as url:
            _run("PostgreSQL", url, redis_url, corpora, copies, table)
    if only in (None, "sqlite"):
        with throwaway_sqlite() as url:
            _run("SQLite", url, redis_url, corpora, copies, table)
    return table
