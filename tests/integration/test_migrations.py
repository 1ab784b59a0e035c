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
    from gateway.search.reindex import migrate_async
    from gateway.store.migrate import alembic_config

    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    await migrate_async(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
    await migrate_async(url)
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


async def test_upgrading_across_an_index_revision_reindexes(tmp_path):
    """A database that held resources before migration 0004 gets its composite rows at once:
    a later partial update would otherwise rewrite only some index tables."""
    from gateway.search.reindex import migrate_async
    from gateway.store.migrate import alembic_config
    from tests.conftest import running_app
    from tests.search.conftest import store

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    assert await migrate_async(url) is None  # a new database: nothing to reindex
    bp = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                "valueQuantity": {"value": v, "system": "http://unitsofmeasure.org"},
            }
            for c, v in (("8480-6", 150), ("8462-4", 80))
        ],
    }
    async with running_app(url) as app:
        await store(app.state.core, [bp])
    # As a gateway before 0004 left it: no grp column, no composite rows.
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0003")
    engine = create_engine(url)
    sql = "SELECT count(*) FROM idx_quantity WHERE param LIKE 'component-code-value-quantity$%'"
    try:
        async with engine.begin() as conn:
            for table in ("idx_token", "idx_quantity"):
                await conn.execute(text(f"DELETE FROM {table} WHERE param LIKE '%$%'"))
        async with engine.connect() as conn:
            live = (await conn.execute(text("SELECT count(*) FROM resources"))).scalar()
        assert live and await migrate_async(url) == live  # every resource, the BP one included
        async with engine.connect() as conn:
            assert (await conn.execute(text(sql))).scalar() == 2
            grouped = await conn.execute(text(sql + " AND grp IS NOT NULL"))
            assert grouped.scalar() == 2
        assert await migrate_async(url) is None  # already at head: no second reindex
    finally:
        await engine.dispose()
