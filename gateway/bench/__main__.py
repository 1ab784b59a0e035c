"""`python -m gateway.bench`: REST-core figures on PostgreSQL and SQLite, 1 and 8 clients.

Prints: sequential POST /Patient rate, Synthea transaction ingest (resources/s), and
GET /Patient/{id} median and p95; then, on PostgreSQL, the cost of authentication (--auth
alone) and 64 mixed clients for 60 s (--load alone). PostgreSQL comes from
GATEWAY_BENCH_POSTGRES_URL (default: the local server's `test` database, used only to create a
throwaway database).
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from gateway.bench import auth as auth_bench
from gateway.bench import hl7v2 as hl7v2_bench
from gateway.bench import ingest as ingest_bench
from gateway.bench import load as load_bench
from gateway.bench import recognition as recognition_bench
from gateway.bench import referrals as referral_bench
from gateway.bench import search as search_bench
from gateway.bench import subscriptions as subscriptions_bench
from gateway.bench.clients import Connection, median_p95_ms, run_clients
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


def bench_posts(base: str, clients: int, n: int) -> tuple[float, list[str]]:
    ids: list[str] = []

    def work(c: Connection, i: int) -> None:
        r = c.request("POST", "Patient", patient(i), {**HEADERS, "Prefer": "return=minimal"})
        assert r.status == 201, r.body[:500]
        ids.append(r.headers["location"].split("/")[-3])

    secs, _ = run_clients(base, clients, n, work)
    return n / secs, ids


def bench_ingest(base: str, clients: int, bundles: list[bytes], counts: list[int]) -> float:
    def work(c: Connection, i: int) -> None:
        r = c.request("POST", "", bundles[i], HEADERS)
        assert r.status == 200, r.body[:500]

    secs, _ = run_clients(base, clients, len(bundles), work)
    return sum(counts) / secs


def bench_reads(base: str, clients: int, ids: list[str], n: int) -> tuple[float, float]:
    rnd = random.Random(7)
    picks = [rnd.choice(ids) for _ in range(n)]

    def work(c: Connection, i: int) -> None:
        r = c.request("GET", f"Patient/{picks[i]}")
        assert r.status == 200

    _, lat = run_clients(base, clients, n, work)
    return median_p95_ms(lat)


def load_synthea(limit: int | None) -> tuple[list[bytes], list[int]]:
    folder = CORPORA / "synthea-r4"
    paths = sorted(p for p in folder.glob("*.json") if "Information" not in p.name)[:limit]
    bodies = [p.read_bytes() for p in paths]
    return bodies, [len(orjson.loads(b)["entry"]) for b in bodies]


def run_backend(name: str, url: str, args: argparse.Namespace, table: Table) -> None:
    bundles, counts = load_synthea(args.bundles)
    with gateway_process(url, args.workers) as server:
        # Warm-up, not measured: every worker process builds the model classes and prepares
        # the statements it uses on first use; the figures are for a running server.
        bench_ingest(server.base, 2 * args.workers, bundles, counts)
        bench_posts(server.base, 2, 100)
        for clients in (1, 8):
            post_rate, ids = bench_posts(server.base, clients, args.posts)
            ingest = bench_ingest(server.base, clients, bundles, counts)
            med, p95 = bench_reads(server.base, clients, ids, args.reads)
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
    ap.add_argument("--auth", action="store_true", help="only the authentication cost")
    ap.add_argument("--auth-patients", type=int, default=2000)
    ap.add_argument("--load", action="store_true", help="only the mixed-load benchmark")
    ap.add_argument("--load-clients", type=int, default=64)
    ap.add_argument("--load-seconds", type=float, default=60.0)
    ap.add_argument("--referrals", action="store_true", help="only the referral loop benchmark")
    ap.add_argument("--referral-loops", type=int, default=400)
    ap.add_argument(
        "--replicas", action="store_true", help="only 2 replicas + a worker (PostgreSQL, Redis)"
    )
    ap.add_argument("--partition", action="store_true", help="only the sharding simulation")
    ap.add_argument("--partition-households", type=int, default=1000)
    ap.add_argument("--partition-shards", type=int, default=4)
    ap.add_argument("--recognition", action="store_true", help="only $recognized-results")
    ap.add_argument("--recognition-results", type=int, default=1000)
    ap.add_argument("--recognition-calls", type=int, default=300)
    ap.add_argument(
        "--subscriptions", action="store_true", help="only notification latency and throughput"
    )
    ap.add_argument("--subscription-writes", type=int, default=3000)
    ap.add_argument("--bulk", action="store_true", help="only the $export throughput")
    ap.add_argument("--bulk-copies", type=int, default=3, help="Synthea corpus copies loaded")
    search_bench.add_arguments(ap)
    ingest_bench.add_arguments(ap)
    hl7v2_bench.add_arguments(ap)
    args = ap.parse_args()
    console = Console()
    pg_admin = os.environ.get(
        "GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    if args.search:
        console.print(search_bench.main_search(args, CORPORA, pg_admin))
        return
    if args.auth:
        console.print(auth_bench.main_auth(args, pg_admin))
        return
    if args.load:
        console.print(*load_bench.main_load(args, pg_admin, CORPORA))
        return
    if args.replicas:
        from gateway.bench import replicas as replicas_bench

        replicas_bench.main(pg_admin)
        return
    if args.partition:
        from gateway.bench import partition as partition_bench

        print(partition_bench.main(pg_admin, args.partition_households, args.partition_shards))
        return
    if args.referrals:
        console.print(referral_bench.main_referrals(args, pg_admin))
        return
    if args.ingest:
        console.print(ingest_bench.main_ingest(args, pg_admin))
        return
    if args.hl7v2:
        console.print(hl7v2_bench.main_hl7v2(args, pg_admin))
        return
    if args.recognition:
        console.print(recognition_bench.main_recognition(args, pg_admin))
        return
    bench_redis = os.environ.get("GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    if args.bulk:
        from gateway.bench import bulk as bulk_bench

        console.print(
            bulk_bench.main_bulk(pg_admin, bench_redis, CORPORA, args.bulk_copies, args.only)
        )
        return
    if args.subscriptions:
        console.print(
            subscriptions_bench.main(
                pg_admin, bench_redis, throughput_writes=args.subscription_writes
            )
        )
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
            run_backend("PostgreSQL", url, args, table)
    if args.only in (None, "sqlite"):
        with throwaway_sqlite() as url:
            run_backend("SQLite", url, args, table)
    console.print(table)
    if args.only in (None, "postgres"):
        console.print(auth_bench.main_auth(args, pg_admin))
        console.print(*load_bench.main_load(args, pg_admin, CORPORA))
        console.print(referral_bench.main_referrals(args, pg_admin))
        console.print(ingest_bench.main_ingest(args, pg_admin))
        console.print(recognition_bench.main_recognition(args, pg_admin))
        console.print(subscriptions_bench.main(pg_admin, bench_redis))
    console.print(hl7v2_bench.main_hl7v2(args, pg_admin))  # both databases (or --only)


if __name__ == "__main__":
    main()
