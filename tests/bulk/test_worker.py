"""Bulk jobs run by real `gateway worker` processes, through Redis (arq) and by polling the
database alone, on SQLite and PostgreSQL: a worker killed mid-export (SIGKILL) is replaced and
the export completes with every line exactly once; two concurrent jobs share the worker;
cancel stops a running job."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from gateway.bulk.jobs import Jobs
from gateway.search.reindex import migrate_async
from gateway.store.tables import bulk_chunks, bulk_jobs
from tests.bulk.helpers import ids, kickoff, load, outputs, wait
from tests.conftest import (
    _drop_postgres,
    _fresh_postgres,
    client_for,
    need_service,
    running_app,
)

PATIENTS = 1500


@pytest.fixture(scope="module", params=["redis", "database"])
def redis_url(request) -> str | None:
    """How workers find jobs: through Redis (arq), or by polling the database alone."""
    if request.param == "database":
        return None
    return need_service("GATEWAY_TEST_REDIS_URL", "Redis")


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def worker_db(database_url, tmp_path_factory) -> AsyncIterator[str]:
    """A database of this module's own: no gateway running its bulk jobs in-process (the
    session's embedded-default app) shares it with the workers under test."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('workers') / 'gateway.db'}"
        await migrate_async(url)
        yield url
        return
    base = os.environ["GATEWAY_TEST_POSTGRES_URL"]
    url, name = await _fresh_postgres(base)
    await migrate_async(url)
    yield url
    await _drop_postgres(base, name)


@pytest.fixture(scope="module")
async def api(worker_db, redis_url, prefix) -> AsyncIterator:
    """The API, leaving bulk jobs to `gateway worker` processes."""
    async with running_app(
        worker_db,
        redis_url=redis_url,
        redis_prefix=prefix,
        validation_workers=0,
        worker_inline="off",
    ) as application:
        assert not application.state.settings.runs_worker_inline()
        yield application


@pytest.fixture
async def client(api) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api) as c:
        yield c


class Workers:
    """`gateway worker` processes of this test (each killed at the end if still running)."""

    def __init__(self, database_url: str, redis_url: str | None, prefix: str):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        if redis_url:
            self.env["GATEWAY_REDIS_URL"] = redis_url
        self.env.update(
            GATEWAY_DATABASE_URL=database_url,
            GATEWAY_REDIS_PREFIX=prefix,
            GATEWAY_VALIDATION_WORKERS="0",
            GATEWAY_BULK_PAGE_SIZE="5",
            GATEWAY_BULK_LEASE_SECONDS="2",
            GATEWAY_BULK_POLL_INTERVAL="0.2",
            GATEWAY_BULK_SLICE_SECONDS="0.2",
            GATEWAY_LOG_LEVEL="warning",
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker"],
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.fixture
def workers(worker_db, redis_url, prefix) -> Iterator[Workers]:
    w = Workers(worker_db, redis_url, prefix)
    try:
        yield w
    finally:
        w.close()


def job_id(status_url: str) -> str:
    return status_url.rsplit("/", 1)[1]


async def written(jobs: Jobs, job: str) -> tuple[str, int]:
    found = await jobs.get(job)
    assert found is not None
    return found.status, sum((found.state.get("written") or {}).values())


async def until(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_killed_worker_is_replaced_and_no_line_is_lost_or_repeated(client, api, workers):
    pids, _ = await load(client, PATIENTS, obs_per=0)
    jobs = Jobs(api.state.core.store.engine)
    status_url = await kickoff(client, params={"_type": "Patient"})
    job = job_id(status_url)
    first = workers.start()

    async def some_progress() -> bool:
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        status, n = await written(jobs, job)
        return status == "running" and n >= 50

    await until(some_progress, what="the first worker to make progress")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    status, before = await written(jobs, job)
    assert status == "running" and before < PATIENTS, "the export ended before the kill"
    r = await client.get(status_url)
    assert r.status_code == 202 and r.headers["x-progress"]

    workers.start()  # takes the job over once the dead worker's lease has expired
    manifest = await wait(client, status_url, timeout=180)
    got = await outputs(client, manifest)
    exported = ids(got["Patient"])
    repeated = [k for k, n in Counter(exported).items() if n > 1]
    assert repeated == []
    assert sorted(exported) == sorted(pids)
    assert sum(o["count"] for o in manifest["output"]) == PATIENTS


async def test_concurrent_jobs_share_the_worker(client, api, workers):
    await load(client, PATIENTS // 2, obs_per=0)
    jobs = Jobs(api.state.core.store.engine)
    a = job_id(await kickoff(client, params={"_type": "Patient"}))
    b = job_id(await kickoff(client, params={"_type": "Patient"}))
    workers.start()
    both_under_way = False

    async def done() -> bool:
        nonlocal both_under_way
        (sa, na), (sb, nb) = await written(jobs, a), await written(jobs, b)
        if 0 < na < PATIENTS // 2 and 0 < nb < PATIENTS // 2:
            both_under_way = True
        return sa == sb == "completed"

    await until(done, timeout=180, what="both jobs")
    assert both_under_way, "one job ran to its end before the other started"


async def test_cancel_stops_a_running_job_in_the_worker(client, api, workers):
    await load(client, PATIENTS // 2, obs_per=0)
    jobs = Jobs(api.state.core.store.engine)
    status_url = await kickoff(client, params={"_type": "Patient"})
    job = job_id(status_url)
    proc = workers.start()

    async def running() -> bool:
        status, n = await written(jobs, job)
        return status == "running" and n > 0

    await until(running, what="the job to start")
    assert (await client.delete(status_url)).status_code == 202
    assert (await client.get(status_url)).status_code == 404
    await asyncio.sleep(1.0)  # the slice in flight finds its job gone at its next commit
    engine = api.state.core.store.engine
    async with engine.connect() as conn:
        left = await conn.execute(
            select(func.count()).select_from(bulk_chunks).where(bulk_chunks.c.job_id == job)
        )
        assert left.scalar_one() == 0
        assert (await conn.execute(select(bulk_jobs.c.job_id))).first() is None
    assert proc.poll() is None  # the worker carries on
    with contextlib.suppress(Exception):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


async def test_a_kickoff_wakes_a_redis_worker_at_once(client, api, workers, redis_url):
    if redis_url is None:
        pytest.skip("without Redis, workers find new jobs by polling the database")
    await load(client, 20, obs_per=0)
    first = await kickoff(client, params={"_type": "Patient"})
    workers.start(GATEWAY_BULK_POLL_INTERVAL="120")  # one sweep at start, the next in 2 min
    await wait(client, first, timeout=90)  # the worker runs: its sweep is behind it
    started = time.monotonic()
    manifest = await wait(client, await kickoff(client, params={"_type": "Patient"}), timeout=30)
    assert time.monotonic() - started < 30
    assert sum(o["count"] for o in manifest["output"]) == 20
