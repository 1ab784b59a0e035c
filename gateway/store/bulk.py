"""Bulk inserts of plain tuples: binary COPY on PostgreSQL, one executemany elsewhere.

A transaction Bundle writes thousands of rows (resources, history, ~12 index rows per
resource, outbox). SQLAlchemy's executemany spends most of its time building per-row
parameter dicts; COPY streams the tuples in asyncpg's binary format and is also the cheapest
way for the server to take them. Both run on the transaction's own connection, so the rows
commit or roll back with everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_rows(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        if conn.in_transaction() and not driver.is_in_transaction():
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement: a COPY
            # on the raw connection before that would commit on its own.
            await conn.exec_driver_sql("SELECT 1")
        try:
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The same exception types as statements through SQLAlchemy: callers map them
            # (a unique-key race is a 409, never a 500).
            raise IntegrityError(f"COPY {table.name}", None, exc) from exc
        except asyncpg.PostgresError as exc:
            raise DBAPIError(f"COPY {table.name}", None, exc) from exc
        return
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    await conn.exec_driver_sql(sql, list(rows))
