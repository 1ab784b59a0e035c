"""Schema migrations (Alembic), run programmatically: `gateway migrate`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from gateway.store.engine import create_engine, normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


# Revisions that change what is indexed (new row kinds; 0005: the SearchParameters the access
# policies search by): a database that held resources before one of them is reindexed right
# after the upgrade (a partial update would otherwise
# rewrite only the index tables whose rows changed, leaving composites half-indexed).
REINDEX_AFTER = ("0002", "0004", "0005")


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Bring the database to `revision`; True when the upgrade crossed one of REINDEX_AFTER on
    an existing database, so its index rows must be rebuilt (gateway.search.reindex.migrate
    does both: index rows are the search layer's to compute). Runs its own event loops."""
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    after = current_revision(database_url)
    if before is None or after is None:
        return False
    return any(before < r <= after for r in REINDEX_AFTER)


def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision, None for a database never migrated."""

    async def read() -> str | None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                if not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version")):
                    return None
                version = await conn.execute(text("SELECT version_num FROM alembic_version"))
                return version.scalar()
        finally:
            await engine.dispose()

    return asyncio.run(read())
