"""The Alembic migrations build exactly the schema gateway/store/tables.py declares."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gateway.store.engine import create_engine
from gateway.store.tables import metadata


def _other_dialect_only(dialect: str) -> set[str]:
    """Names of indexes declared for another dialect only (LIKE-prefix ones on PostgreSQL)."""
    names = set()
    for table in metadata.tables.values():
        for index in table.indexes:
            only = getattr(getattr(index, "_ddl_if", None), "dialect", None)
            if only is not None and only != dialect:
                names.add(index.name)
    return names


async def test_migrated_schema_matches_the_declared_tables(database_url):
    engine = create_engine(database_url)
    dialect = engine.dialect.name
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    # alembic_version is Alembic's own table, not ours.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
    skip = _other_dialect_only(dialect)
    diff = [d for d in diff if not (d[0] == "add_index" and d[1].name in skip)]
    assert diff == []


async def test_migrations_downgrade_and_upgrade_again(tmp_path):
    from gateway.store.migrate import alembic_config, upgrade_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    await upgrade_async(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    skip = _other_dialect_only("sqlite")
    assert [
        d
        for d in diff
        if not (d[0] == "add_index" and d[1].name in skip)
        and not (d[0] == "remove_table" and d[1].name == "alembic_version")
    ] == []


async def test_postgresql_keeps_correlated_token_statistics(database_url):
    engine = create_engine(database_url)
    if engine.dialect.name != "postgresql":
        await engine.dispose()
        pytest.skip("extended statistics are a PostgreSQL feature")
    try:
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT stxname FROM pg_statistic_ext"))).scalars()
            assert "st_idx_token_value" in set(names)
    finally:
        await engine.dispose()
