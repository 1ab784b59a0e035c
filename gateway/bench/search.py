"""Search benchmark: ≥ 200,000 resources (Synthea replicated with fresh ids), then median and
p95 latency of token, string, date-range, reference, chained and _include searches and of
Patient $everything, with 1 and 8 concurrent clients.

    python -m gateway.bench --search [--copies 13] [--only postgres|sqlite]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote

import orjson
from rich.table import Table

from gateway.bench.clients import Connection, median_p95_ms, run_clients
from gateway.bench.server import analyze, gateway_process

HEADERS = {"content-type": "application/fhir+json"}
UUID = re.compile(rb"urn:uuid:([0-9a-f\-]{36})")
SYNTHEA_ID = "https://github.com/synthetichealth/synthea"


def fresh_copy(body: bytes) -> bytes:
    """The bundle with every urn:uuid replaced by a new one (new resources, same links)."""
    mapping: dict[bytes, bytes] = {}

    def sub(m: re.Match[bytes]) -> bytes:
        new = mapping.setdefault(m.group(1), str(uuid.uuid4()).encode())
        return b"urn:uuid:" + new

    return UUID.sub(sub, body)


def load(base: str, bundles: list[bytes], info: list[bytes], copies: int) -> int:
    """Ingest the info bundles once, then `copies` fresh copies of every patient bundle."""
    for b in info:
        r = Connection(base).request("POST", "", b, HEADERS)
        assert r.status == 200, r.body[:500]
    queue = [b for _ in range(copies) for b in bundles]
    loaded: list[int] = []

    def work(c: Connection, i: int) -> None:
        r = c.request("POST", "", fresh_copy(queue[i]), HEADERS)
        assert r.status == 200, r.body[:500]
        loaded.append(len(orjson.loads(r.body).get("entry", [])))

    run_clients(base, 8, len(queue), work)
    return sum(loaded)


def samples(base: str) -> dict[str, list[str]]:
    r = Connection(base).request("GET", "Patient?_count=300&_elements=identifier,name")
    pats = [e["resource"] for e in orjson.loads(r.body)["entry"]]
    idents = [
        f"{i['system']}|{i['value']}"
        for p in pats
        for i in p.get("identifier", [])
        if i.get("system") == SYNTHEA_ID
    ]
    families = [p["name"][0]["family"][:3] for p in pats if p.get("name")]
    return {"ids": [p["id"] for p in pats], "idents": idents, "families": families}


def queries(s: dict[str, list[str]]) -> dict[str, Callable[[random.Random], str]]:
    return {
        "token": lambda r: (
            "Observation?code=http://loinc.org|"
            + r.choice(["8302-2", "29463-7", "8867-4", "72514-3", "2339-0", "39156-5"])
        ),
        "string": lambda r: "Patient?name=" + r.choice(s["families"]),
        "date range": lambda r: (
            f"Encounter?date=ge{r.randint(2000, 2018)}-03-01&date=lt{r.randint(2000, 2018)}-04-01"
        ),
        "reference": lambda r: "Observation?subject=Patient/" + r.choice(s["ids"]),
        "chained": lambda r: "Encounter?subject.identifier=" + r.choice(s["idents"]),
        "_include": lambda r: (
            f"Encounter?patient={r.choice(s['ids'])}"
            "&_include=Encounter:participant&_include=Encounter:service-provider"
        ),
        "composite": lambda r: (
            "Observation?component-code-value-quantity=http://loinc.org|"
            + r.choice(["8480-6$gt140", "8480-6$lt110", "8462-4$gt90", "8462-4$lt70"])
        ),
        "$everything": lambda r: f"Patient/{r.choice(s['ids'])}/$everything",
    }


def measure(
    base: str, make: Callable[[random.Random], str], clients: int, n: int
) -> tuple[float, float]:
    rnd = random.Random(11)
    urls = [make(rnd) for _ in range(n)]
    urls = [f"{u}{'&' if '?' in u else '?'}_count=20" for u in urls]

    def work(c: Connection, i: int) -> None:
        r = c.request("GET", quote(urls[i], safe="/?&=:|,$-._~"))
        assert r.status == 200, (urls[i], r.body[:300])

    run_clients(base, 1, 1, lambda c, i: work(c, 0))  # warm: plans and statements
    _, lat = run_clients(base, clients, n, work)
    return median_p95_ms(lat)


def run(
    name: str,
    url: str,
    args: argparse.Namespace,
    table: Table,
    bundles: list[bytes],
    info: list[bytes],
) -> None:
    with gateway_process(url, args.workers) as server:
        t = time.perf_counter()
        n = load(server.base, bundles, info, args.copies)
        secs = time.perf_counter() - t
        print(f"{name}: loaded {n:,} resources in {secs:.0f} s ({n / secs:,.0f}/s)", flush=True)
        analyze(url)
        s = samples(server.base)
        for label, make in queries(s).items():
            row = [name, label]
            for clients in (1, 8):
                med, p95 = measure(server.base, make, clients, args.searches)
                row += [f"{med:.1f}", f"{p95:.1f}"]
            table.add_row(*row)
            print(" ".join(row), flush=True)


def search_table(workers: int, copies: int) -> Table:
    table = Table(title=f"Search ({os.cpu_count()} cores, {workers} workers, Synthea ×{copies})")
    for col in (
        "database",
        "search",
        "1 client median ms",
        "p95 ms",
        "8 clients median ms",
        "p95 ms",
    ):
        table.add_column(col, justify="right")
    return table


def load_bundles(folder) -> tuple[list[bytes], list[bytes]]:  # type: ignore[no-untyped-def]
    paths = sorted(folder.glob("*.json"))
    info = [p.read_bytes() for p in paths if "Information" in p.name]
    return [p.read_bytes() for p in paths if "Information" not in p.name], info


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--copies", type=int, default=13, help="Synthea replicas (13 ≈ 209k)")
    ap.add_argument("--searches", type=int, default=200, help="requests per search and mode")


def main_search(args: argparse.Namespace, corpora, pg_admin: str) -> Table:  # type: ignore[no-untyped-def]
    from gateway.bench.server import throwaway_postgres, throwaway_sqlite

    bundles, info = load_bundles(corpora / "synthea-r4")
    table = search_table(args.workers, args.copies)
    if args.only in (None, "postgres"):
        with throwaway_postgres(pg_admin) as url:
            run("PostgreSQL", url, args, table, bundles, info)
    if args.only in (None, "sqlite"):
        with throwaway_sqlite() as url:
            run("SQLite", url, args, table, bundles, info)
    return table


__all__ = ["add_arguments", "main_search", "orjson"]
