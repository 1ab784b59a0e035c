"""`gateway reindex`: rebuild every index table from the current resources.

Run after adding or changing a SearchParameter under profiles/SearchParameter/ (or upgrading
the extraction rules). Resources are read in keyset-ordered batches; each batch's index rows
are replaced in its own transaction, so a long reindex never holds one huge transaction and
searches keep working meanwhile (a resource's rows are swapped atomically).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, or_, select, tuple_

from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.store.bulk import insert_rows
from gateway.store.engine import create_engine, write_transaction
from gateway.store.index_rows import COLUMNS, table_rows
from gateway.store.migrate import upgrade
from gateway.store.tables import INDEX_TABLES, resources

Progress = Callable[[int, int], None]  # (done, total)
BATCH = 500
R = resources.c


async def reindex_engine(engine: Any, extractor: Any, progress: Progress | None = None) -> int:
    """Re-extract and replace the index rows of every current resource; returns the count."""
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).where(R.deleted.is_(False)))).scalar_one()
    done = 0
    after: tuple[str, str] | None = None
    if progress:
        progress(0, total)
    while True:
        q = select(R.res_type, R.res_id, R.content).where(R.deleted.is_(False))
        if after is not None:
            q = q.where(
                or_(R.res_type > after[0], and_(R.res_type == after[0], R.res_id > after[1]))
            )
        q = q.order_by(R.res_type, R.res_id).limit(BATCH)
        # A write transaction from the start (BEGIN IMMEDIATE on SQLite): a read transaction
        # that later writes fails at once if another writer committed in between.
        async with write_transaction(engine) as conn:
            rows = (await conn.execute(q)).all()
            if rows:
                await _replace(conn, extractor, rows)
        if not rows:
            break
        after = (rows[-1].res_type, rows[-1].res_id)
        done += len(rows)
        if progress:
            progress(done, total)
    return done


async def _replace(conn: Any, extractor: Any, rows: Sequence[Any]) -> None:
    keys = [(r.res_type, r.res_id) for r in rows]
    inserts: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        doc = orjson.loads(r.content)
        for kind, items in table_rows(r.res_type, r.res_id, extractor.extract(doc)).items():
            inserts.setdefault(kind, []).extend(items)
    for kind, table in INDEX_TABLES.items():
        await conn.execute(delete(table).where(tuple_(table.c.res_type, table.c.res_id).in_(keys)))
        await insert_rows(conn, table, COLUMNS[kind], inserts.get(kind, []))


async def reindex_async(
    database_url: str, progress: Progress | None = None, profiles_dir: Path | None = None
) -> int:
    extra = [profiles_dir / "SearchParameter"] if profiles_dir else []
    extractor = IndexExtractor(SearchParamRegistry.load(extra_dirs=extra))
    engine = create_engine(database_url)
    try:
        return await reindex_engine(engine, extractor, progress)
    finally:
        await engine.dispose()


def reindex(database_url: str, progress: Progress | None = None) -> int:
    """Sync entry point for the CLI. The SearchParameters are the shipped R4 ones plus
    GATEWAY_PROFILES_DIR/SearchParameter (the same set the server indexes with)."""
    from gateway.settings import Settings

    return asyncio.run(reindex_async(database_url, progress, Settings().profiles_dir))


def migrate(database_url: str, revision: str = "head") -> int | None:
    """`gateway migrate`: bring the schema to `revision` and, when the upgrade crossed a
    revision that changes what is indexed, reindex every resource; returns how many were
    reindexed (None: no reindex was needed). Runs its own event loops: call from sync code."""
    if not upgrade(database_url, revision):
        return None
    return reindex(database_url)


async def migrate_async(database_url: str, revision: str = "head") -> int | None:
    return await asyncio.to_thread(migrate, database_url, revision)
