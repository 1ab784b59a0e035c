"""`python -m gateway.bench --ingest`: `$ingest` throughput for contract records on PostgreSQL,
validation (our profiles) and the regional contract rules on, as a gateway serves them.

A throwaway database is given a synthetic district (gateway/bench/ingest_data.py: 1+1+1
teams, residents) through `$ingest` too; then contracts are posted in chunks by concurrent
clients, once new (each record stores a CarePlan and its Consent) and once more unchanged
(each record updates them: the idempotent re-send). As in the other benchmarks the figures
are for a running system: a tenth of the contracts goes in first, unmeasured, and the
planner's statistics are refreshed (as autovacuum would) before each measured pass.
Target: ≥ 500 contracts/s.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from rich.table import Table

from gateway.bench.clients import Connection, run_clients
from gateway.bench.ingest_data import world
from gateway.bench.server import analyze, gateway_process, throwaway_postgres

HEADERS = {"content-type": "application/json"}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--ingest", action="store_true", help="only the $ingest benchmark")
    ap.add_argument("--ingest-contracts", type=int, default=4000)
    ap.add_argument("--ingest-clients", type=int, default=8)
    ap.add_argument("--ingest-chunk", type=int, default=100, help="records per request")


def _post(base: str, source: str, records: list[dict[str, Any]], clients: int, chunk: int) -> float:
    """Seconds to $ingest every record, `chunk` per request over `clients` connections;
    every record must be stored or updated."""
    chunks = [records[i : i + chunk] for i in range(0, len(records), chunk)]

    def work(c: Connection, i: int) -> None:
        r = c.request("POST", f"$ingest?source={source}", orjson.dumps(chunks[i]), HEADERS)
        assert r.status == 200, r.body[:500]
        counts = {
            p["name"]: p["valueInteger"]
            for p in orjson.loads(r.body)["parameter"]
            if "valueInteger" in p
        }
        assert counts["rejected"] == 0, r.body[:2000]

    start = time.perf_counter()
    run_clients(base, clients, len(chunks), work)
    return time.perf_counter() - start


def main_ingest(args: Any, pg_admin: str) -> Table:
    n = args.ingest_contracts
    w = world(residents=n, teams=max(4, n // 200))
    for resident in w.residents:  # the household register is the resident benchmark's
        resident.pop("家庭编号", None)
    table = Table(
        title=f"$ingest, contract records, PostgreSQL, validation and rules on ({n:,} records, "
        f"{args.ingest_clients} clients × {args.ingest_chunk} per request)"
    )
    for col in ("pass", "contracts/s", "seconds"):
        table.add_column(col, justify="right")
    with throwaway_postgres(pg_admin) as url:
        with gateway_process(url, args.workers) as server:
            clients, chunk = args.ingest_clients, args.ingest_chunk
            _post(server.base, "institution", w.institutions, 1, chunk)
            _post(server.base, "practitioner", w.practitioners, clients, 20)
            _post(server.base, "team", w.teams, clients, 5)
            _post(server.base, "resident", w.residents, clients, chunk)
            warm = n // 10
            _post(server.base, "contract", w.contracts[:warm], clients, chunk)
            for label, records in (
                ("new (stored)", w.contracts[warm:]),
                ("re-sent (updated)", w.contracts),
            ):
                analyze(url)
                secs = _post(server.base, "contract", records, clients, chunk)
                table.add_row(label, f"{len(records) / secs:,.0f}", f"{secs:.1f}")
    return table
