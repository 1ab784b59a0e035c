"""`python -m gateway.bench`: REST-core figures on PostgreSQL and SQLite, 1 and 8 clients.

Prints: sequential POST /Patient rate, Synthea transaction ingest (resources/s), and
GET /Patient/{id} median and p95. PostgreSQL comes from GATEWAY_BENCH_POSTGRES_URL (default:
the local server's `test` database, used only to create a throwaway database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from gateway.bench import search as search_bench
from gateway.bench.server import gateway_process, throwaway_postgres, throwaway_sqlite

CORPORA = Path(
    os.environ.get(
        "GATEWAY_CORPORA", Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"
    )
)
HEADERS = {"content-type": "application/fhir+json"}


def patient(i: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": f"HR{i:010d}"}],
            "name": [{"text": f"张三{i}", "family": "张", "given": [f"三{i}"]}],
            "gender": "male",
            "birthDate": "1960-05-01",
            "address": [{"city": "广州市", "district": "越秀区", "line": ["中山一路1号"]}],
        }
    )


Work = Callable[[httpx.AsyncClient, int], Awaitable[None]]


async def _run_clients(clients: int, total: int, work: Work) -> tuple[float, list[float]]:
    """Run `total` calls of work(client, i) over `clients` concurrent loops.
    Returns (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            t = time.perf_counter()
            await work(client, i)
            latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        start = time.perf_counter()
        await asyncio.gather(*(loop(client) for _ in range(clients)))
        return time.perf_counter() - start, latencies


async def bench_posts(base: str, clients: int, n: int) -> tuple[float, list[str]]:
    ids: list[str] = []

    async def work(c: httpx.AsyncClient, i: int) -> None:
        r = await c.post(
            f"{base}/Patient", content=patient(i), headers={**HEADERS, "Prefer": "return=minimal"}
        )
        assert r.status_code == 201, r.text
        ids.append(r.headers["location"].split("/")[-3])

    secs, _ = await _run_clients(clients, n, work)
    return n / secs, ids


async def bench_ingest(base: str, clients: int, bundles: list[bytes], counts: list[int]) -> float:
    async def work(c: httpx.AsyncClient, i: int) -> None:
        r = await c.post(base, content=bundles[i], headers=HEADERS)
        assert r.status_code == 200, r.text[:500]

    secs, _ = await _run_clients(clients, len(bundles), work)
    return sum(counts) / secs


async def bench_reads(base: str, clients: int, ids: list[str], n: int) -> tuple[float, float]:
    rnd = random.Random(7)
    picks = [rnd.choice(ids) for _ in range(n)]

    async def work(c: httpx.AsyncClient, i: int) -> None:
        r = await c.get(f"{base}/Patient/{picks[i]}")
        assert r.status_code == 200

    _, lat = await _run_clients(clients, n, work)
    lat.sort()
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.95) - 1] * 1000


def load_synthea(limit: int | None) -> tuple[list[bytes], list[int]]:
    folder = CORPORA / "synthea-r4"
    paths = sorted(p for p in folder.glob("*.json") if "Information" not in p.name)[:limit]
    bodies = [p.read_bytes() for p in paths]
    return bodies, [len(orjson.loads(b)["entry"]) for b in bodies]


async def run_backend(name: str, url: str, args: argparse.Namespace, table: Table) -> None:
    bundles, counts = load_synthea(args.bundles)
    with gateway_process(url, args.workers) as server:
        for clients in (1, 8):
            post_rate, ids = await bench_posts(server.base, clients, args.posts)
            ingest = await bench_ingest(server.base, clients, bundles, counts)
            med, p95 = await bench_reads(server.base, clients, ids, args.reads)
            table.add_row(
                name,
                str(clients),
                f"{post_rate:,.0f}",
                f"{ingest:,.0f}",
                f"{med:.2f}",
                f"{p95:.2f}",
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--bundles", type=int, default=None, help="Synthea bundles (default: all)")
    ap.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("GATEWAY_BENCH_WORKERS", os.cpu_count() or 1)),
    )
    ap.add_argument("--only", choices=["postgres", "sqlite"], default=None)
    ap.add_argument("--search", action="store_true", help="the search benchmark instead")
    search_bench.add_arguments(ap)
    args = ap.parse_args()
    console = Console()
    pg_admin = os.environ.get(
        "GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    if args.search:
        console.print(search_bench.main_search(args, CORPORA, pg_admin))
        return
    table = Table(title=f"REST core ({os.cpu_count()} cores, {args.workers} gateway workers)")
    for col in (
        "database",
        "clients",
        "POST /Patient /s",
        "transaction ingest resources/s",
        "GET /Patient/{id} median ms",
        "p95 ms",
    ):
        table.add_column(col, justify="right")
    if args.only in (None, "postgres"):
        with throwaway_postgres(pg_admin) as url:
            asyncio.run(run_backend("PostgreSQL", url, args, table))
    if args.only in (None, "sqlite"):
        with throwaway_sqlite() as url:
            asyncio.run(run_backend("SQLite", url, args, table))
    console.print(table)


if __name__ == "__main__":
    main()
