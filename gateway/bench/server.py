"""Start a gateway process on a throwaway database and a free port, for benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.search.reindex import migrate


@dataclass
class Server:
    base: str
    database: str
    process: subprocess.Popen[bytes]


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


class GatewayProcess:
    """`gateway serve` in a process group of its own: start(), kill() (SIGKILL to the whole
    group, as an OOM killer or a pulled plug), stop() (SIGTERM, graceful), and the resident
    memory of the server and every process it started."""

    def __init__(self, database_url: str, workers: int, env: dict[str, str]):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.root = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.env = {
            **env,
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_WORKERS": str(workers),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr_path = Path(tempfile.mkstemp(prefix="gateway-", suffix=".log")[1])

    def start(self, timeout: float = 60.0) -> None:
        with open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--no-migrate"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.time() + timeout
        while True:
            try:
                if httpx.get(f"{self.root}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"gateway did not start: {self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """The server and every process below it (workers, validation pool)."""
        if self.process is None:
            return []
        try:
            top = psutil.Process(self.process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def kill(self) -> list[int]:
        """SIGKILL the process group; returns the pids it had (to check none survives)."""
        assert self.process is not None
        pids = [p.pid for p in self.processes()]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        return pids

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None


def bench_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "GATEWAY_LOG_LEVEL": "warning"}
    # The settings `make run` starts with (foreign data such as Synthea is accepted by them).
    for name in ("GATEWAY_PROFILE_VALIDATION", "GATEWAY_CORE_VALIDATION", "GATEWAY_AUTH"):
        env.pop(name, None)
    env.pop("GATEWAY_REDIS_URL", None)
    env.update(extra_env or {})
    return env


def migrate_in_thread(database_url: str) -> None:
    # Alembic runs its own event loop: keep it off the caller's (running) loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate, database_url).result()


@contextlib.contextmanager
def gateway_process(
    database_url: str, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    migrate_in_thread(database_url)
    gateway = GatewayProcess(database_url, workers, bench_env(extra_env))
    gateway.start()
    assert gateway.process is not None
    try:
        yield Server(gateway.base, database_url, gateway.process)
    finally:
        gateway.stop()
        gateway.stderr_path.unlink(missing_ok=True)


__all__ = [
    "GatewayProcess",
    "Server",
    "bench_env",
    "gateway_process",
    "migrate_in_thread",
    "throwaway_postgres",
    "throwaway_sqlite",
]
