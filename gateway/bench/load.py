"""`python -m gateway.bench --load`: the gateway under 64 concurrent mixed clients for 60
seconds, on PostgreSQL (also part of the default `make bench`).

Each client draws its next request from a fixed mix: reads, searches (by name in Chinese, by
identifier, a resident's observations), creates, If-Match updates, small transactions, and now
and then a whole Synthea patient as a transaction (1–4 MB). A 503 is an answer too (the gateway
refusing work beyond its limits); the client honours Retry-After before its next request.
Printed: throughput, p50/p95/p99 per kind and overall, answers by status, and the resident
memory of all gateway processes before, at peak and after (target: no 500, peak ≤ 1.5 GB).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from rich.table import Table

from gateway.bench.clients import Connection, run_clients
from gateway.bench.server import GatewayProcess, bench_env, migrate_in_thread, throwaway_postgres

HEADERS = {"content-type": "application/fhir+json"}
MB = 1024 * 1024
ID_SYSTEM = "urn:oid:2.16.156.10011.1.2"
SURNAMES = "张王李赵刘陈杨黄周吴"

# kind → weight (per 100 requests)
MIX = {
    "read": 35,
    "search": 25,
    "create": 15,
    "update": 10,
    "transaction": 13,
    "synthea": 2,
}


def patient(i: int) -> dict[str, Any]:
    surname = SURNAMES[i % len(SURNAMES)]
    return {
        "resourceType": "Patient",
        "identifier": [{"system": ID_SYSTEM, "value": f"LD{i:09d}"}],
        "name": [{"text": f"{surname}{i}", "family": surname, "given": [str(i)]}],
        "gender": "female" if i % 2 else "male",
        "birthDate": f"19{40 + i % 60:02d}-0{1 + i % 9}-1{i % 10}",
    }


def small_transaction(i: int) -> bytes:
    ref = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
    entries = [
        {"fullUrl": ref, "resource": patient(i), "request": {"method": "POST", "url": "Patient"}}
    ]
    for k in range(3):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": ref},
                    "valueQuantity": {"value": 60 + k, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            self.statuses[status] += 1


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


class Mix:
    """What the clients share: ids to read and update, counters for new records."""

    def __init__(self, ids: list[str], synthea: list[bytes], seed: int):
        self.ids = ids
        self.synthea = synthea
        self.kinds = [k for k, w in MIX.items() for _ in range(w)]
        self.next = 10_000_000
        self.lock = threading.Lock()
        self.rnd = random.Random(seed)

    def number(self) -> int:
        with self.lock:
            self.next += 1
            return self.next

    def request(self, rnd: random.Random) -> tuple[str, str, str, bytes | None, dict[str, str]]:
        kind = rnd.choice(self.kinds)
        pid = rnd.choice(self.ids)
        if kind == "read":
            return kind, "GET", f"Patient/{pid}", None, {}
        if kind == "search":
            pick = rnd.randrange(3)
            if pick == 0:
                name = quote(rnd.choice(SURNAMES))
                return kind, "GET", f"Patient?name={name}&_count=20", None, {}
            if pick == 1:
                value = f"LD{rnd.randrange(len(self.ids)):09d}"
                return kind, "GET", f"Patient?identifier={ID_SYSTEM}|{value}", None, {}
            return kind, "GET", f"Observation?subject=Patient/{pid}&_count=20", None, {}
        if kind == "create":
            body = orjson.dumps(patient(self.number()))
            return kind, "POST", "Patient", body, {"Prefer": "return=minimal"}
        if kind == "update":
            return kind, "PUT", f"Patient/{pid}", None, {}  # body built after reading
        if kind == "transaction":
            return kind, "POST", "", small_transaction(self.number()), {}
        return kind, "POST", "", rnd.choice(self.synthea), {}


def _client(base: str, mix: Mix, tally: Tally, until: float, seed: int) -> None:
    rnd = random.Random(seed)
    conn = Connection(base)
    try:
        while time.monotonic() < until:
            kind, method, url, body, headers = mix.request(rnd)
            started = time.perf_counter()
            try:
                if kind == "update":
                    current = conn.request("GET", url)
                    if current.status != 200:
                        tally.add(kind, time.perf_counter() - started, current.status)
                        continue
                    doc = orjson.loads(current.body)
                    doc["name"][0]["given"] = [f"更新{rnd.randrange(10**6)}"]
                    etag = current.headers.get("etag", "")
                    reply = conn.request(
                        "PUT", url, orjson.dumps(doc), {**HEADERS, "If-Match": etag}
                    )
                else:
                    reply = conn.request(method, url, body, {**HEADERS, **headers})
            except OSError:
                conn.close()
                conn = Connection(base)
                tally.add(kind, time.perf_counter() - started, 0)
                continue
            tally.add(kind, time.perf_counter() - started, reply.status)
            if reply.status == 503:
                time.sleep(float(reply.headers.get("retry-after", "1")))
    finally:
        conn.close()


def _seed(base: str, n: int) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()

    def work(c: Connection, i: int) -> None:
        r = c.request("POST", "", small_transaction(i), HEADERS)
        assert r.status == 200, r.body[:300]
        location = orjson.loads(r.body)["entry"][0]["response"]["location"]
        with lock:
            ids.append(location.split("/")[1])

    run_clients(base, 8, n, work)
    return ids


def run_load(
    database_url: str, workers: int, clients: int, seconds: float, synthea: list[bytes]
) -> tuple[Table, Table]:
    migrate_in_thread(database_url)
    gateway = GatewayProcess(database_url, workers, bench_env())
    gateway.start()
    try:
        ids = _seed(gateway.base, 2000)
        mix = Mix(ids, synthea, seed=64)
        warm = Tally()  # every worker process warmed (models, statements), not measured
        _client(gateway.base, mix, warm, time.monotonic() + 5, seed=1)
        time.sleep(2)
        before = gateway.rss_bytes()
        peak = before
        tally = Tally()
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, gateway.rss_bytes())
                time.sleep(0.25)

        sampler = threading.Thread(target=sample)
        sampler.start()
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=_client, args=(gateway.base, mix, tally, until, 100 + i))
            for i in range(clients)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        time.sleep(3)
        done.set()
        sampler.join()
        after = gateway.rss_bytes()
    finally:
        gateway.stop()
        gateway.stderr_path.unlink(missing_ok=True)
    return _tables(tally, wall, clients, workers, before, peak, after)


def _tables(
    tally: Tally, wall: float, clients: int, workers: int, before: int, peak: int, after: int
) -> tuple[Table, Table]:
    every = [s for values in tally.latencies.values() for s in values]
    kinds = Table(
        title=f"Load: {clients} mixed clients for {wall:.0f} s on PostgreSQL "
        f"({workers} gateway workers)"
    )
    for col in ("kind", "requests", "per s", "p50 ms", "p95 ms", "p99 ms"):
        kinds.add_column(col, justify="right")
    for kind in [*MIX, "all"]:
        values = every if kind == "all" else tally.latencies.get(kind, [])
        kinds.add_row(
            kind,
            f"{len(values):,}",
            f"{len(values) / wall:,.1f}",
            f"{_pct(values, 0.50):.1f}",
            f"{_pct(values, 0.95):.1f}",
            f"{_pct(values, 0.99):.1f}",
        )
    summary = Table(title="Load: answers and memory (all gateway processes, RSS)")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for status, count in sorted(tally.statuses.items()):
        label = "connection errors" if status == 0 else f"HTTP {status}"
        summary.add_row(label, f"{count:,}")
    summary.add_row("HTTP 500 (target 0)", f"{tally.statuses.get(500, 0):,}")
    summary.add_row("memory before", f"{before / MB:,.0f} MB")
    summary.add_row("memory peak (target ≤ 1,536 MB)", f"{peak / MB:,.0f} MB")
    summary.add_row("memory after", f"{after / MB:,.0f} MB")
    return kinds, summary


def main_load(args: Any, pg_admin: str, corpora: Path) -> tuple[Table, Table]:
    folder = corpora / "synthea-r4"
    paths = sorted(p for p in folder.glob("*.json") if "Information" not in p.name)[:20]
    synthea = [p.read_bytes() for p in paths]
    with throwaway_postgres(pg_admin) as url:
        return run_load(url, args.workers, args.load_clients, args.load_seconds, synthea)
