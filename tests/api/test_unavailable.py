"""A database that cannot answer now is a 503 with Retry-After (clients retry), never a 500,
and the gateway recovers by itself once it answers again. The database is held for real: by a
second connection that takes SQLite's write lock, or an exclusive lock on PostgreSQL, while
the gateway's deadlines are short. (Stopping a whole server is the fault suite's part.)"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.store.engine import normalise_url
from tests.api.test_crud import PATIENT
from tests.conftest import client_for, running_app

DEADLINE = 0.5


@pytest.fixture(scope="module")
async def hurried_app(database_url):
    async with running_app(
        database_url, db_statement_timeout=DEADLINE, db_pool_timeout=DEADLINE
    ) as application:
        yield application


@pytest.fixture
async def hurried(hurried_app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hurried_app) as c:
        yield c


@contextlib.asynccontextmanager
async def database_held(database_url: str) -> AsyncIterator[None]:
    """Another client holds the database so that the gateway's writes must wait."""
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        # In a thread: the gateway's own relay may hold the lock a moment, and needs this
        # event loop to let go of it.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")  # the one write lock
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    url = make_url(normalise_url(database_url)).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await conn.close()


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"


async def test_a_held_database_is_a_503_then_recovers(hurried, database_url):
    before = await hurried.post("/Patient", json=PATIENT)
    assert before.status_code == 201, before.text
    async with database_held(database_url):
        r = await asyncio.wait_for(hurried.post("/Patient", json=PATIENT), 10 * DEADLINE + 5)
        assert_unavailable(r)
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}}],
        }
        assert_unavailable(await hurried.post("", json=bundle))
    # No restart: the next request is served, and nothing refused was half-written.
    after = await hurried.post("/Patient", json=PATIENT)
    assert after.status_code == 201, after.text
    total = (await hurried.get("/Patient", params={"_summary": "count"})).json()["total"]
    assert total == 2


async def test_batch_entries_refused_by_a_held_database_are_503_entries(hurried, database_url):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}}],
    }
    async with database_held(database_url):
        r = await hurried.post("", json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["status"].startswith("503")


async def test_readiness_follows_the_database(hurried_app):
    transport = httpx.ASGITransport(app=hurried_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert (await c.get("/healthz")).status_code == 200
