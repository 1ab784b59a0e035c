"""Start a gateway process on a throwaway database and a free port, for benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.search.reindex import migrate


@dataclass
class Server:
    base: str
    database: str
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    name = f"gw_bench_{uuid.uuid4().hex[:10]}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    _execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(database_url: str) -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would in a running
    system: a freshly loaded table's stale estimates pick poor plans for a while."""
    sql = "VACUUM ANALYZE" if database_url.startswith("postgresql") else "ANALYZE"
    _execute(database_url, sql)


def _execute(url: str, sql: str) -> None:
    import asyncio

    from gateway.store.engine import create_engine as create_async

    async def run() -> None:
        engine = create_async(url)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run())


@contextlib.contextmanager
def throwaway_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield f"sqlite+aiosqlite:///{d}/bench.db"


@contextlib.contextmanager
def gateway_process(
    database_url: str, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    # Alembic runs its own event loop: keep it off the caller's (running) loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate, database_url).result()
    port = _free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_WORKERS": str(workers),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    # The settings `make run` starts with (foreign data such as Synthea is accepted by them).
    for name in ("GATEWAY_PROFILE_VALIDATION", "GATEWAY_CORE_VALIDATION", "GATEWAY_AUTH"):
        env.pop(name, None)
    env.update(extra_env or {})
    env.pop("GATEWAY_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"gateway did not start: {err[-2000:]}")
            time.sleep(0.2)
        yield Server(base, database_url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


__all__ = ["Server", "gateway_process", "throwaway_postgres", "throwaway_sqlite"]
