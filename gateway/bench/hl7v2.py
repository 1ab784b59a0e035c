"""`python -m gateway.bench --hl7v2`: ORU^R01 messages/s ingested over MLLP (target ≥ 300/s on
this machine), on PostgreSQL and SQLite.

A real `gateway mllp` process on a throwaway database and a free port; clients on loopback,
each its own MLLP connection sending messages one after another (each waits for its ACK, as
MLLP senders do). A message is the corpus' UTF-8 ORU (5 OBX: NM, ST, CE, SN values, a
specimen, the lab in OBX-23), each with its own control ID and report number, for 200
residents (so the patient is found, not created, after the first report of each); the
planner's statistics refreshed before each run, as autovacuum keeps them. Printed:
messages/s and the ACK's median and p95 latency, per database, number of `gateway mllp`
processes on the port (`--hl7v2-workers 1 2`: SO_REUSEPORT) and number of connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.table import Table

from gateway.bench.server import (
    _free_port,
    analyze,
    bench_env,
    migrate_in_thread,
    throwaway_postgres,
    throwaway_sqlite,
)

LAB = "郑州市金水区检验中心^12410105MB1A2B3CXG^USCC"
TEMPLATE = (
    "\r".join(
        [  # tests/hl7v2/messages/oru-r01-utf8.hl7
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261201153000+0800||ORU^R01^ORU_R01|LAB20261201001|P|2.5.1"
            "|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "ORC|RE|SQ2026120100123|JY202612010001",
            "OBR|1|SQ2026120100123|JY202612010001|LAB-BIO^生化检验^L|||20261201073000+0800"
            "|||||||||||||||20261201152000+0800||CH|F",
            "OBX|1|NM|1558-6^空腹血糖^LN||6.80|mmol/L^mmol/L^UCUM|3.9-6.1|H|||F|||20261201073000+0800"
            "|||||||||金水区检验中心^^^^^^USCC^^^12410105MB1A2B3CXG",
            "OBX|2|NM|4548-4^糖化血红蛋白^LN||5.60|%|4.0-6.0|N|||F|||20261201073000+0800",
            "OBX|3|ST|20454-5^尿蛋白^LN||阴性||阴性|NEG|||F",
            "OBX|4|CE|5196-1^乙肝表面抗原^LN||260385009^Negative^SCT||||||F",
            "OBX|5|SN|1988-5^C反应蛋白^LN||<^0.5|mg/L|<10||||F",
            "SPM|1|SP20261201001||SER^血清^HL70487|||||||||||||20261201073000+0800",
        ]
    )
    + "\r"
)
_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def add_arguments(ap: Any) -> None:
    ap.add_argument("--hl7v2", action="store_true", help="only ORU^R01 over MLLP")
    ap.add_argument("--hl7v2-messages", type=int, default=1500)
    ap.add_argument("--hl7v2-connections", type=int, nargs="+", default=[1, 16, 32])
    # one process, and one per core (the most this machine does)
    ap.add_argument(
        "--hl7v2-workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1})
    )


def id_card(n: int) -> str:
    """A valid resident ID number (GB 11643) of a woman born in 1980 (PID-8 F)."""
    body = f"410102{19800101 + n % 28:08d}{(n // 28) % 100:02d}{2 * (n % 5)}"[:17]
    return body + "10X98765432"[sum(int(a) * w for a, w in zip(body, _W, strict=True)) % 11]


def messages(count: int, residents: int = 200) -> list[bytes]:
    text = TEMPLATE
    out = []
    for n in range(count):
        resident = n % residents
        birth = f"198001{1 + resident % 28:02d}"
        out.append(
            text.replace("LAB20261201001", f"B{os.getpid()}-{n:07d}")
            .replace("JY202612010001", f"JYB{os.getpid()}{n:07d}")
            .replace("SP20261201001", f"SPB{os.getpid()}{n:07d}")
            .replace("410102198003150022", id_card(resident))
            .replace("|19800315|", f"|{birth}|")
            .encode("utf-8")
        )
    return out


@contextlib.contextmanager
def mllp_process(database_url: str, workers: int = 1) -> Iterator[int]:
    migrate_in_thread(database_url)
    port = _free_port()
    env = bench_env({"GATEWAY_DATABASE_URL": database_url})
    command = ["mllp", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import app; app()", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    seen = bytearray()
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway mllp exited: {proc.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
            if b"MLLP listening" in _peek(proc, seen):  # printed once every process listens
                break
            if time.monotonic() > deadline:
                raise RuntimeError("gateway mllp did not start within 60 s")
            time.sleep(0.1)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _peek(proc: subprocess.Popen[bytes], seen: bytearray) -> bytearray:
    """What the process printed so far, read without blocking ("MLLP listening" once every
    worker process listens)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    with contextlib.suppress(BlockingIOError, TypeError):
        seen += proc.stdout.read() or b""
    return seen


async def _send_all(port: int, batches: list[list[bytes]]) -> tuple[float, list[float]]:
    from hl7.mllp import open_hl7_connection

    latencies: list[float] = []

    async def client(batch: list[bytes]) -> None:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        try:
            for message in batch:
                t = time.perf_counter()
                writer.writeblock(message)
                await writer.drain()
                ack = await reader.readblock()
                latencies.append(time.perf_counter() - t)
                if b"MSA|AA|" not in ack:
                    raise RuntimeError(f"not accepted: {ack[:400]!r}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(b) for b in batches))
    return time.perf_counter() - start, latencies


def measure(port: int, msgs: list[bytes], connections: int) -> tuple[float, float, float]:
    batches = [msgs[i::connections] for i in range(connections)]
    secs, lat = asyncio.run(_send_all(port, batches))
    lat.sort()
    return len(msgs) / secs, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.95)] * 1000


def run_backend(name: str, url: str, args: Any, table: Table) -> None:
    total = args.hl7v2_messages
    runs = len(args.hl7v2_connections) * len(args.hl7v2_workers)
    msgs = messages(total * runs + 50 * len(args.hl7v2_workers))
    offset = 0
    for workers in args.hl7v2_workers:
        with mllp_process(url, workers) as port:
            # warm-up: the lab, the first residents, the plans (of every process)
            measure(port, msgs[offset : offset + 50], 2 * workers)
            offset += 50
            for connections in args.hl7v2_connections:
                # Statistics as autovacuum keeps them in a running system: on tables a minute
                # old, stale estimates had the identifier lookups scan every Observation's
                # identifier rows (4 ms instead of 0.07 ms each, growing with the table).
                analyze(url)
                chunk = msgs[offset : offset + total]
                offset += total
                rate, med, p95 = measure(port, chunk, connections)
                table.add_row(
                    name,
                    str(workers),
                    str(connections),
                    str(total),
                    f"{rate:,.0f}",
                    f"{med:.1f}",
                    f"{p95:.1f}",
                )


def main_hl7v2(args: Any, pg_admin: str) -> Table:
    table = Table(title=f"ORU^R01 over MLLP ({os.cpu_count()} cores, `gateway mllp`)")
    for col in (
        "database",
        "processes",
        "connections",
        "messages",
        "messages/s",
        "ACK median ms",
        "p95 ms",
    ):
        table.add_column(col, justify="right")
    if args.only in (None, "postgres"):
        with throwaway_postgres(pg_admin) as url:
            run_backend("PostgreSQL", url, args, table)
    if args.only in (None, "sqlite"):
        with throwaway_sqlite() as url:
            run_backend("SQLite", url, args, table)
    return table
