"""`gateway mllp` as its own process on the test database (SQLite and PostgreSQL): it listens,
acknowledges what it stored, and ends cleanly on SIGTERM; with `--workers 2`, two processes
on the one port (SO_REUSEPORT) do the same."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from hl7.mllp import open_hl7_connection

from tests.hl7v2.corpus import raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _oru(n: int) -> bytes:
    text = raw("oru-r01-utf8").decode("utf-8")
    return (
        text.replace("LAB20261201001", f"LAB-PROC-{n:04d}")
        .replace("JY202612010001", f"JY-PROC-{n:04d}")
        .replace("SP20261201001", f"SP-PROC-{n:04d}")
        .encode("utf-8")
    )


@pytest.mark.parametrize("workers", [1, 2])
async def test_gateway_mllp_command(
    database_url: str, client: httpx.AsyncClient, workers: int
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = database_url
    command = ["mllp", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import app; app()", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # The announcement, not a first accepted connection, says it is ready: with two
        # workers one may listen (and take every connection) before the other has started.
        assert proc.stdout is not None
        announced = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert announced.startswith(b"MLLP listening on 127.0.0.1:"), (
            proc.stderr.read() if proc.stderr and proc.poll() is not None else announced
        )
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        writer.writeblock(raw("adt-a01-utf8"))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readblock(), 60)
        writer.close()
        assert ack.split(b"\r")[1] == b"MSA|AA|ADT0001"
        found = (await client.get("/Patient?name=张三")).json()
        assert found["total"] == 1

        async def sender(first: int) -> list[bytes]:
            reader, writer = await open_hl7_connection("127.0.0.1", port)
            acks = []
            for n in range(first, first + 3):
                writer.writeblock(_oru(n))
                await writer.drain()
                acks.append((await asyncio.wait_for(reader.readblock(), 60)).split(b"\r")[1])
            writer.close()
            return acks

        acks = await asyncio.gather(*(sender(c * 10) for c in range(6)))  # spread by the kernel
        assert [a for acked in acks for a in acked] == [
            f"MSA|AA|LAB-PROC-{n:04d}".encode() for c in range(6) for n in range(c * 10, c * 10 + 3)
        ]
        reports = await client.get("/DiagnosticReport?_summary=count")
        assert reports.json()["total"] == 18
        assert (await client.get("/Patient?_summary=count")).json()["total"] == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    assert code == 0, proc.stderr.read() if proc.stderr else ""
