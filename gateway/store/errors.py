"""Database failures that say "not now" rather than "wrong": the database is down, restarting,
refusing or dropping connections, out of pooled connections, busy (SQLite's lock), or a
statement ran past its deadline. The edge answers them 503 with Retry-After, so clients retry;
anything else stays a 500 (a bug)."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import exc as sa

from gateway.vocab import outcomes

RETRY_AFTER_SECONDS = 5


def database_unavailable() -> outcomes.OperationOutcomeError:
    return outcomes.unavailable(
        "The database is unavailable right now: retry later", RETRY_AFTER_SECONDS
    )


_PG_UNAVAILABLE = (
    "CannotConnectNowError",  # starting up / shutting down
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    "PostgresConnectionError",
    "TooManyConnectionsError",
    "QueryCanceledError",  # statement_timeout
    "AdminShutdownError",
    "CrashShutdownError",
)


def unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa.TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True  # refused, reset, unreachable
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if isinstance(orig, sqlite3.OperationalError):
            return "locked" in str(orig) or "busy" in str(orig)
        chain = [type(orig).__name__, *(c.__name__ for c in type(orig).__mro__)]
        cause = getattr(orig, "__cause__", None)
        if cause is not None:
            chain += [c.__name__ for c in type(cause).__mro__]
        return any(name in _PG_UNAVAILABLE for name in chain) or isinstance(
            cause, OSError | ConnectionError
        )
    return False
