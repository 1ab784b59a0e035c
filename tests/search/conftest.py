"""Search-suite fixtures: data seeded once per module (per database), a client that does not
truncate, and a SQL statement counter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gateway.store.model import Write
from gateway.vocab.context import RequestContext
from tests.conftest import truncate_all

HEADERS = {"content-type": "application/fhir+json"}


async def seed(app: Any, resources: list[dict[str, Any]]) -> dict[str, str]:
    """Empty the database and store each resource under its own id, straight through the
    repository (search tests need no profile validation). Returns id → type."""
    core = app.state.core
    await truncate_all(core.store.engine)
    await store(core, resources)
    return {r["id"]: r["resourceType"] for r in resources}


async def store(core: Any, resources: list[dict[str, Any]]) -> None:
    repo = core.store.repository(RequestContext())
    writes = [Write(r["resourceType"], r["id"], r, "PUT") for r in resources]
    for i in range(0, len(writes), 2000):
        await repo.apply(writes[i : i + 2000])


def make_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/fhir",
        headers=HEADERS,
        timeout=120,
    )


@pytest.fixture(scope="module")
async def reader(app) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as c:
        yield c


_COUNTING: ContextVar[Any] = ContextVar("counting", default=None)
_BACKGROUND = ("outbox", "sub_state", "sub_events", "bulk_jobs", "bulk_files", "bulk_chunks")


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        # The event relay runs concurrently after writes (its statements name the outbox;
        # SQLite write transactions open with a bare BEGIN IMMEDIATE), and so do the
        # background parts of the embedded default (subscription sweeps, bulk job polls).
        if statement.startswith("BEGIN") or any(t in statement for t in _BACKGROUND):
            return
        # only the statements of the code under count (its task and the tasks it starts, which
        # inherit the context): not those of background parts reading meanwhile
        if _COUNTING.get() is not self:
            return
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_statements(core: Any) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = core.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counter)
    token = _COUNTING.set(counter)
    try:
        yield counter
    finally:
        _COUNTING.reset(token)
        event.remove(engine, "before_cursor_execute", counter)


async def ids(client: httpx.AsyncClient, url: str, **kw: Any) -> list[str]:
    r = await client.get(url, **kw)
    assert r.status_code == 200, r.text[:2000]
    return [
        e["resource"]["id"]
        for e in r.json().get("entry", [])
        if e.get("search", {}).get("mode") == "match"
    ]


async def all_ids(client: httpx.AsyncClient, url: str) -> list[str]:
    """Follow next links to the end."""
    out: list[str] = []
    next_url: str | None = url
    while next_url:
        r = await client.get(next_url)
        assert r.status_code == 200, r.text[:2000]
        b = r.json()
        out += [e["resource"]["id"] for e in b.get("entry", []) if e["search"]["mode"] == "match"]
        nxt = [lk["url"] for lk in b.get("link", []) if lk["relation"] == "next"]
        next_url = nxt[0] if nxt else None
    return out
