"""Async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg): one code path for both.

SQLite: WAL, a busy timeout, and write transactions that start with BEGIN IMMEDIATE so a
read-then-write (conditional create, version check) cannot interleave with another writer.
PostgreSQL: write transactions serialise on row locks and advisory locks (see repository).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

WRITE = {"gateway_write": True}


def normalise_url(url: str) -> str:
    """Accept plain driver-less URLs (postgresql://, sqlite:///) and pick the async driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    generic_plans: bool = False,
    statement_timeout: float | None = None,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """`generic_plans`: PostgreSQL may reuse a statement's plan across executions (asyncpg
    prepares every statement): for statements whose text holds their selective values and
    whose parameters are ids, such as the access checks; planning them costs more than running
    them. Deadlines: a statement may run `statement_timeout` seconds (PostgreSQL cancels it;
    SQLite waits that long for its write lock), a request waits `pool_timeout` seconds for a
    pooled connection, a connection attempt 5 seconds: a frozen or absent database answers
    503 within them, never holds a request as long as it is frozen. None: no statement deadline
    (migrations, reindexing; SQLite still waits up to a minute for its lock)."""
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        busy = statement_timeout or 60.0
        engine = create_async_engine(
            url, connect_args={"timeout": busy}, pool_timeout=pool_timeout, hide_parameters=True
        )
        _configure_sqlite(engine, int(busy * 1000))
        _PATIENCE[str(u.database or ":memory:")] = busy
        return engine
    # No pre-ping: it costs a round trip on every checkout; recycle stale connections instead.
    # Custom plans always: asyncpg prepares every statement, and after five executions
    # PostgreSQL may switch to a generic plan that ignores the values, which picks a 74 ms plan
    # for a skewed search (`8462-4$lt70`: 13 matches among 6,500 codes) that takes 10 ms
    # planned for its values; planning these statements costs well under a millisecond.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=pool_timeout,
        # Errors and logs show statements, never their values (identifiers, names, bodies).
        hide_parameters=True,
        connect_args={
            "timeout": 5,
            "command_timeout": statement_timeout + 5 if statement_timeout else None,
            "server_settings": {
                "plan_cache_mode": "force_generic_plan" if generic_plans else "force_custom_plan",
                "statement_timeout": str(int((statement_timeout or 0) * 1000)),
            },
        },
    )


def _configure_sqlite(engine: AsyncEngine, busy_ms: int) -> None:
    # Take transaction control from the sqlite3 module so we choose DEFERRED vs IMMEDIATE
    # (SQLAlchemy's documented recipe for pysqlite/aiosqlite).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("gateway_write") else "BEGIN")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a write transaction, committed when the block ends (rolled back when
    it raises). SQLite: this process's writers take their turn here, first come first served,
    before BEGIN IMMEDIATE. Left to SQLite, a writer finding the lock taken polls it with
    sleeps of up to 100 ms (its busy handler): with 16 MLLP connections and the outbox relay
    writing, BEGIN IMMEDIATE averaged 28 ms. Other processes on the file still meet at the
    database's lock. The wait is bounded like SQLite's (the statement deadline, else a minute):
    past it, a TimeoutError, which the edge answers 503."""
    turn = _writer_turn(engine)
    if turn is not None:
        await asyncio.wait_for(turn[0].acquire(), turn[1])
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                yield conn
    finally:
        if turn is not None:
            turn[0].release()


_PATIENCE: dict[str, float] = {}  # database file → its engines' busy timeout, seconds
# SQLite's writer turns: per event loop (an asyncio.Lock belongs to one), per database file
# (every engine on the file shares it).
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _writer_turn(engine: AsyncEngine) -> tuple[asyncio.Lock, float] | None:
    if engine.dialect.name != "sqlite":
        return None
    turns = _TURNS.setdefault(asyncio.get_running_loop(), {})
    key = str(engine.url.database or ":memory:")
    lock = turns.get(key)
    if lock is None:
        lock = turns[key] = asyncio.Lock()
    return lock, _PATIENCE.get(key, 60.0)
