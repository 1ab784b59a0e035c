"""The fault suite: real gateway processes (`gateway serve`) on loopback that are killed,
starved and fed hostile input, over PostgreSQL and Redis instances of its own where they
must be stopped or frozen. Run with `make faults` (CI runs it after `make test`); every
check is bounded in time and count (FAULT_ROUNDS: kill -9 rounds per database, default 5)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psutil
import pytest

from gateway.bench.server import (
    GatewayProcess,
    bench_env,
    migrate_in_thread,
    throwaway_postgres,
    throwaway_sqlite,
)
from gateway.bench.services import postgres_bin
from tests.conftest import IN_CI, need_service

ROUNDS = int(os.environ.get("FAULT_ROUNDS", "5"))


def need_postgres_binaries() -> None:
    if postgres_bin() is None or (os.geteuid() == 0 and not _has_user("postgres")):
        if IN_CI:
            pytest.fail("PostgreSQL binaries (and the postgres user) are needed in CI")
        pytest.skip("PostgreSQL binaries not found: own-instance fault tests skipped")


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
def fault_database(request) -> Iterator[str]:
    """A migrated throwaway database: a SQLite file, or a database on the shared server."""
    if request.param == "sqlite":
        with throwaway_sqlite() as url:
            migrate_in_thread(url)
            yield url
        return
    admin = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    with throwaway_postgres(admin) as url:
        migrate_in_thread(url)
        yield url


@contextlib.contextmanager
def running_gateway(database_url: str, workers: int = 1, **env: str) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(database_url, workers, bench_env(env))
    gateway.start()
    try:
        yield gateway
    finally:
        if gateway.process is not None:
            pids = [p.pid for p in gateway.processes()]
            gateway.stop()
            for pid in pids:  # never leave a process behind, whatever failed
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
        gateway.stderr_path.unlink(missing_ok=True)


def survivors(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive
