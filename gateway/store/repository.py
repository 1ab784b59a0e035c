"""The repository: every read and write of resources, bound to a request context.

Writes are applied in bulk inside one database transaction: resource rows, history versions,
index rows (diffed per table) and outbox rows commit together or not at all. Events are
published only after commit. Domain rules plug in as write hooks, called before storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, bindparam, delete, func, or_, select, text, true, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.bulk import insert_rows
from gateway.store.engine import write_transaction
from gateway.store.index_rows import COLUMNS, changed_kinds, table_rows
from gateway.store.model import Event, Stored, Write
from gateway.store.tables import INDEX_TABLES, history, outbox, resources
from gateway.vocab import clock, json_io, outcomes
from gateway.vocab.context import RequestContext

if TYPE_CHECKING:
    from gateway.store.store import Store

WriteHook = Callable[["Repository", Write, Stored | None], Awaitable[None]]

_CHUNK = 500
_RESOURCE_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "content")
_HISTORY_COLUMNS = (
    "res_type",
    "res_id",
    "version",
    "last_updated",
    "method",
    "deleted",
    "content",
    "principal",
)
_OUTBOX_COLUMNS = (
    "res_type",
    "res_id",
    "version",
    "action",
    "created_at",
    "principal",
    "published",
)


@dataclass(slots=True)
class HistoryPage:
    entries: list[tuple[int, Stored]]  # (hid, version)
    next_cursor: int | None


@dataclass(slots=True)
class _Tx:
    events: list[Event] = field(default_factory=list)


def _with_meta(resource: dict[str, Any], res_id: str, version: int, ts: int) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = clock.to_instant(ts)
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": res_id, "meta": meta, **rest}


def _row_to_stored(row: Any) -> Stored:
    """A `resources` row (the first six columns, in table order) as a Stored version."""
    return Stored(row[0], row[1], row[2], row[3], bool(row[4]), bytes(row[5]))


def _history_to_stored(row: Any) -> Stored:
    return Stored(
        row.res_type,
        row.res_id,
        row.version,
        row.last_updated,
        bool(row.deleted),
        bytes(row.content),
        row.method,
    )


def _history_conditions(
    res_type: str | None,
    res_id: str | None,
    since: int | None,
    at: tuple[int, int] | None = None,
) -> list[Any]:
    conds = []
    if res_type:
        conds.append(history.c.res_type == res_type)
    if res_id:
        conds.append(history.c.res_id == res_id)
    if since is not None:
        conds.append(history.c.last_updated >= since)
    if at is not None:
        # R4 http.html#history `_at`: versions current at some point in [lo, hi]: made by hi
        # and not replaced before lo (a version is current until the next one is made).
        lo, hi = at
        later = history.alias("later")
        replaced = (
            select(func.min(later.c.last_updated))
            .where(
                later.c.res_type == history.c.res_type,
                later.c.res_id == history.c.res_id,
                later.c.version > history.c.version,
            )
            .scalar_subquery()
        )
        conds.append(history.c.last_updated <= hi)
        conds.append(or_(replaced.is_(None), replaced > lo))
    return conds


def _same_key(keys: Any) -> Any:
    return and_(resources.c.res_type == keys.c.res_type, resources.c.res_id == keys.c.res_id)


def lock_key(text_key: str) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks."""
    return int.from_bytes(
        hashlib.blake2b(text_key.encode(), digest_size=8).digest(), "big", signed=True
    )


class Repository:
    def __init__(self, store: Store, ctx: RequestContext, conn: AsyncConnection | None = None):
        self.store = store
        self.ctx = ctx
        self.conn = conn
        self._tx: _Tx | None = None

    # --- transactions -------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        """A repository bound to one write transaction; nested calls join the outer one."""
        if self.conn is not None:
            yield self
            return
        tx = Repository(self.store, self.ctx)
        tx._tx = _Tx()
        try:
            async with write_transaction(self.store.engine) as conn:
                tx.conn = conn
                yield tx
        except IntegrityError as exc:
            raise outcomes.version_conflict(
                f"Concurrent write conflict, retry the request ({exc.orig.__class__.__name__})"
            ) from None
        except DBAPIError as exc:
            if "deadlock" in str(exc).lower() or "could not serialize" in str(exc).lower():
                raise outcomes.version_conflict("Concurrent write conflict, retry") from None
            raise
        await self.store.after_commit(tx._tx.events)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """The open transaction's connection, or an autocommit one: a read outside a
        transaction is one statement, so BEGIN/ROLLBACK would only add round trips."""
        if self.conn is not None:
            yield self.conn
        else:
            async with self.store.read_engine.connect() as conn:
                yield conn

    @property
    def dialect(self) -> str:
        return self.store.engine.dialect.name

    async def lock(self, key: str) -> None:
        """Serialise transactions on a logical key (conditional create). SQLite write
        transactions are already serial (BEGIN IMMEDIATE)."""
        assert self.conn is not None, "lock() needs a transaction"
        if self.dialect == "postgresql":
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(key)})

    # --- what the client may see --------------------------------------------------------
    def seen(
        self,
        res_type: str | None,
        type_col: Any,
        id_col: Any,
        types: list[str] | None = None,
        writing: bool = False,
    ) -> list[Any]:
        """The conditions (none or one) that keep a read to what the request's client may see
        (gateway.vocab.context.Access; nothing is hidden without one); `writing`: what its
        policy reaches."""
        access = self.ctx.access
        cond = (
            access.condition(res_type, type_col, id_col, types, writing=writing) if access else None
        )
        return [] if cond is None else [cond]

    async def visible(
        self, keys: Sequence[tuple[str, str]], writing: bool = False
    ) -> set[tuple[str, str]]:
        """Which of these (type, id) the client may see (all when nothing is restricted);
        `writing`: which its policy reaches."""
        if self.ctx.access is None or not keys:
            return set(keys)
        types = sorted({t for t, _ in keys})
        out: set[tuple[str, str]] = set()
        async with self._reading() as conn:
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i : i + _CHUNK])
                q = select(resources.c.res_type, resources.c.res_id).where(
                    tuple_(resources.c.res_type, resources.c.res_id).in_(chunk),
                    *self.seen(None, resources.c.res_type, resources.c.res_id, types, writing),
                )
                out.update((r[0], r[1]) for r in await conn.execute(q))
        return out

    # --- reads --------------------------------------------------------------------------
    async def read(self, res_type: str, res_id: str) -> Stored | None:
        seen = self.seen(res_type, resources.c.res_type, resources.c.res_id)
        q = select(resources).where(
            resources.c.res_type == res_type, resources.c.res_id == res_id, *seen
        )
        async with self._checking(bool(seen)) as conn:
            row = (await conn.execute(q)).first()
        return _row_to_stored(row) if row else None

    async def sees(self, res_type: str, res_id: str) -> bool:
        """Whether the client may see this one resource (always, when nothing is restricted)."""
        seen = self.seen(res_type, resources.c.res_type, resources.c.res_id)
        if not seen:
            return True
        q = select(resources.c.res_id).where(
            resources.c.res_type == res_type, resources.c.res_id == res_id, *seen
        )
        async with self._checking(True) as conn:
            return (await conn.execute(q)).first() is not None

    @asynccontextmanager
    async def _checking(self, restricted: bool) -> AsyncIterator[AsyncConnection]:
        """Where a one-resource read under an access policy runs: on PostgreSQL, outside a
        transaction, the connections that keep generic plans (Store.check_engine), so the
        policy's statement (the same text for every request of one principal and type, its
        values written in; only the id bound) is planned once rather than on every read, which
        costs more than running it."""
        if not restricted or self.conn is not None:
            async with self._reading() as conn:
                yield conn
        else:
            async with self.store.check_engine.connect() as conn:
                yield conn

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        out: dict[tuple[str, str], Stored] = {}
        async with self._reading() as conn:
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i : i + _CHUNK])
                types = sorted({t for t, _ in chunk})
                q = select(resources).where(
                    tuple_(resources.c.res_type, resources.c.res_id).in_(chunk),
                    *self.seen(None, resources.c.res_type, resources.c.res_id, types),
                )
                for row in await conn.execute(q):
                    out[(row.res_type, row.res_id)] = _row_to_stored(row)
        return out

    async def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        seen = self.seen(res_type, history.c.res_type, history.c.res_id)
        q = select(history).where(
            history.c.res_type == res_type,
            history.c.res_id == res_id,
            history.c.version == version,
            *seen,
        )
        async with self._checking(bool(seen)) as conn:
            row = (await conn.execute(q)).first()
        return _history_to_stored(row) if row else None

    async def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        *,
        since: int | None = None,
        at: tuple[int, int] | None = None,
        cursor: int | None = None,
        count: int = 50,
    ) -> HistoryPage:
        """Versions newest first; `at`: only those current at some point in [lo, hi] (µs).
        Only of resources the client may see now (one that left its reach takes its past
        versions with it)."""
        conds = _history_conditions(res_type, res_id, since, at)
        if res_id is None:
            conds += self.seen(res_type, history.c.res_type, history.c.res_id)
        elif res_type is not None and not await self.sees(res_type, res_id):
            return HistoryPage([], None)
        if cursor is not None:
            conds.append(history.c.hid < cursor)
        q = (
            select(history)
            .where(and_(true(), *conds))
            .order_by(history.c.hid.desc())
            .limit(count + 1)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(q)).all()
        entries = [(r.hid, _history_to_stored(r)) for r in rows[:count]]
        next_cursor = entries[-1][0] if len(rows) > count and entries else None
        return HistoryPage(entries, next_cursor)

    async def count_history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        since: int | None = None,
        at: tuple[int, int] | None = None,
    ) -> int:
        conds = _history_conditions(res_type, res_id, since, at)
        conds += self.seen(res_type, history.c.res_type, history.c.res_id)
        q = select(func.count()).select_from(history).where(and_(true(), *conds))
        async with self._reading() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def search_rows(
        self, where: list[Any], order_by: list[Any], limit: int, offset: int = 0
    ) -> list[Stored]:
        """Every matching row, whatever the client may see: conditional interactions decide
        with it (and refuse when a match is one the client may not see)."""
        q = select(resources).where(and_(*where)).order_by(*order_by).limit(limit).offset(offset)
        async with self._reading() as conn:
            return [_row_to_stored(r) for r in await conn.execute(q)]

    async def search_page(
        self, where: list[Any], keys: list[Any], order_by: list[Any], limit: int, offset: int = 0
    ) -> list[tuple[Stored, list[Any]]]:
        """One page of current resources, each with the values of its sort keys (cursors)."""
        cols = [resources, *(k.label(f"k{i}") for i, k in enumerate(keys))]
        q = select(*cols).where(and_(*where)).order_by(*order_by).limit(limit).offset(offset)
        n = len(resources.c)
        async with self._reading() as conn:
            return [(_row_to_stored(r), list(r[n:])) for r in await conn.execute(q)]

    async def search_page_ids(
        self, res_type: str, page: Any, descending: bool = False
    ) -> list[Stored]:
        """The current resources of one page of ids (a subquery with a `res_id` column, already
        ordered and limited), in id order; one statement."""
        key = page.c.res_id.desc() if descending else page.c.res_id.asc()
        q = (
            select(resources)
            .join(page, and_(resources.c.res_type == res_type, resources.c.res_id == page.c.res_id))
            .order_by(key)
        )
        async with self._reading() as conn:
            return [_row_to_stored(r) for r in await conn.execute(q)]

    async def search_keys(
        self, keys: Any, where: list[Any], order_by: list[Any], limit: int | None = None
    ) -> list[Stored]:
        """Current resources whose (res_type, res_id) are rows of `keys` (a subquery with those
        two columns) and that satisfy `where`; one statement."""
        q = (
            select(resources)
            .join(keys, _same_key(keys))
            .where(
                resources.c.deleted.is_(False),
                *where,
                *self.seen(None, resources.c.res_type, resources.c.res_id),
            )
            .order_by(*order_by)
            .limit(limit)
        )
        async with self._reading() as conn:
            return [_row_to_stored(r) for r in await conn.execute(q)]

    async def count_keys(self, keys: Any, where: list[Any]) -> int:
        """How many current resources search_keys() would return without a limit."""
        q = (
            select(keys.c.res_id)
            .join(resources, _same_key(keys))
            .where(
                resources.c.deleted.is_(False),
                *where,
                *self.seen(None, resources.c.res_type, resources.c.res_id),
            )
        )
        return await self.count_rows(q)

    async def count_rows(self, q: Any) -> int:
        """The number of rows a select returns."""
        async with self._reading() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            )

    async def estimate_rows(self, q: Any) -> int:
        """The planner's estimate of the rows a select returns on PostgreSQL (no scan); an exact
        count elsewhere."""
        if self.dialect != "postgresql":
            return await self.count_rows(q)
        sql = q.compile(self.store.engine.sync_engine, compile_kwargs={"literal_binds": True})
        async with self._reading() as conn:
            plan = (await conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).scalar_one()
        plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    async def search_resources(self, where: list[Any], limit: int | None = None) -> list[Stored]:
        """Current resources matching `where` (includes, $everything), in (type, id) order."""
        q = (
            select(resources)
            .where(and_(*where), *self.seen(None, resources.c.res_type, resources.c.res_id))
            .order_by(resources.c.res_type, resources.c.res_id)
            .limit(limit)
        )
        async with self._reading() as conn:
            return [_row_to_stored(r) for r in await conn.execute(q)]

    # --- writes -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[Write]) -> list[Stored | None]:
        """Apply writes in order, in one transaction. Returns each write's resulting version
        (None for a delete of something that does not exist)."""
        async with self.transaction() as tx:
            return await tx._apply(writes)

    async def amend(self, changes: Sequence[tuple[Stored, dict[str, Any]]]) -> list[Stored]:
        """Replace the content of versions written earlier in this transaction, keeping their
        version (a transaction resolves conditional references after its writes). Index rows
        are rebuilt; no new version, no new event."""
        assert self.conn is not None and self._tx is not None, "amend() needs a transaction"
        out: list[Stored] = []
        for st, resource in changes:
            doc = _with_meta(resource, st.res_id, st.version, st.last_updated)
            content = json_io.dumps(doc)
            key = (resources.c.res_type == st.res_type, resources.c.res_id == st.res_id)
            await self.conn.execute(
                update(resources)
                .where(*key, resources.c.version == st.version)
                .values(content=content)
            )
            await self.conn.execute(
                update(history)
                .where(
                    history.c.res_type == st.res_type,
                    history.c.res_id == st.res_id,
                    history.c.version == st.version,
                )
                .values(content=content)
            )
            rows = table_rows(st.res_type, st.res_id, self.store.extractor.extract(doc))
            for kind, table in INDEX_TABLES.items():
                await self.conn.execute(
                    delete(table).where(
                        table.c.res_type == st.res_type, table.c.res_id == st.res_id
                    )
                )
                await insert_rows(self.conn, table, COLUMNS[kind], rows.get(kind, []))
            out.append(replace(st, content=content))
        return out

    async def _current_for_update(
        self, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Stored]:
        assert self.conn is not None
        out: dict[tuple[str, str], Stored] = {}
        keys = sorted(set(keys))  # one lock order for every transaction: fewer deadlocks
        for i in range(0, len(keys), _CHUNK):
            q = (
                select(resources)
                .where(tuple_(resources.c.res_type, resources.c.res_id).in_(keys[i : i + _CHUNK]))
                .with_for_update()
            )
            for row in await self.conn.execute(q):
                out[(row.res_type, row.res_id)] = _row_to_stored(row)
        return out

    async def _apply(self, writes: Sequence[Write], trusted: bool = False) -> list[Stored | None]:
        """`trusted`: the gateway's own writes (provenance, audit): neither authorized nor
        annotated."""
        assert self.conn is not None and self._tx is not None
        original = await self._current_for_update(
            [(w.res_type, w.res_id) for w in writes if not w.create_only]
        )
        if self.ctx.access is not None and not trusted:
            await self._authorize(writes, original)
        current: dict[tuple[str, str], Stored | None] = dict(original)
        final_docs: dict[tuple[str, str], dict[str, Any] | None] = {}
        hist_rows: list[tuple[Any, ...]] = []
        results: list[Stored | None] = []
        made: list[Stored] = []  # the new versions
        events: list[Event] = []
        for w in writes:
            key = (w.res_type, w.res_id)
            cur = current.get(key)
            self._check_preconditions(w, cur)
            for hook in self.store.hooks:
                await hook(self, w, cur)
            if w.resource is None and (cur is None or cur.deleted):
                results.append(cur)  # deleting nothing: no new version
                continue
            version = cur.version + 1 if cur else 1
            ts = clock.now_us()
            if w.resource is None:
                doc, content = None, b""
                action = "delete"
            else:
                doc = _with_meta(w.resource, w.res_id, version, ts)
                content = json_io.dumps(doc)
                action = "create" if cur is None or cur.deleted else "update"
            stored = Stored(
                w.res_type,
                w.res_id,
                version,
                ts,
                doc is None,
                content,
                w.method,
                created=action == "create",
            )
            current[key] = stored
            final_docs[key] = doc
            results.append(stored)
            made.append(stored)
            hist_rows.append(
                (
                    w.res_type,
                    w.res_id,
                    version,
                    ts,
                    w.method,
                    doc is None,
                    content,
                    self.ctx.principal,
                )
            )
            events.append(Event(w.res_type, w.res_id, version, action, self.ctx.principal))
        if hist_rows:
            await self._write_rows(original, current, final_docs, hist_rows, events)
        self._tx.events.extend(events)
        if not trusted and made:
            for annotate in self.store.annotators:  # provenance first: the check may need it
                extra = await annotate(self, made)
                if extra:
                    await self._apply(extra, trusted=True)
        if self.ctx.access is not None and not trusted:
            # A client writes only within its reach: the written resources must be in it
            # (raising here rolls the whole transaction back).
            written = [k for k, doc in final_docs.items() if doc is not None]
            if len(await self.visible(written, writing=True)) < len(written):
                raise outcomes.forbidden(
                    "The written resource would be outside this client's access"
                )
        return results

    async def _authorize(
        self, writes: Sequence[Write], original: dict[tuple[str, str], Stored]
    ) -> None:
        """The client's scopes and role allow each write, and it may see what it changes."""
        access = self.ctx.access
        assert access is not None
        for w in writes:
            cur = original.get((w.res_type, w.res_id))
            exists = cur is not None and not cur.deleted
            action = "delete" if w.resource is None else "update" if exists else "create"
            access.may_write(w.res_type, action)
        changed = [k for k, cur in original.items() if not cur.deleted]
        if len(await self.visible(changed, writing=True)) < len(changed):
            raise outcomes.forbidden("The resource is outside this client's access")

    @staticmethod
    def _check_preconditions(w: Write, cur: Stored | None) -> None:
        if w.create_only and cur is not None:
            raise outcomes.version_conflict(f"{w.res_type}/{w.res_id} already exists")
        if w.expected_version == "*":
            if cur is None or cur.deleted:
                raise outcomes.precondition_failed(
                    f"If-Match: * but {w.res_type}/{w.res_id} has no current version"
                )
        elif w.expected_version is not None:
            actual = cur.version if cur is not None else None
            if actual != w.expected_version:
                raise outcomes.precondition_failed(
                    f"If-Match version {w.expected_version} does not match the current version "
                    f"{actual if actual is not None else '(none)'} of {w.res_type}/{w.res_id}"
                )

    async def _write_rows(
        self,
        original: dict[tuple[str, str], Stored],
        current: dict[tuple[str, str], Stored | None],
        final_docs: dict[tuple[str, str], dict[str, Any] | None],
        hist_rows: list[tuple[Any, ...]],
        events: list[Event],
    ) -> None:
        conn = self.conn
        assert conn is not None
        extract = self.store.extractor.extract
        new_rows: list[tuple[Any, ...]] = []
        upd_rows: list[dict[str, Any]] = []
        idx_delete: dict[str, list[dict[str, str]]] = {}
        idx_insert: dict[str, list[tuple[Any, ...]]] = {}
        for key, doc in final_docs.items():
            st = current[key]
            assert st is not None
            before = original.get(key)
            if before is None:
                new_rows.append(
                    (key[0], key[1], st.version, st.last_updated, st.deleted, st.content)
                )
            else:
                upd_rows.append(
                    {
                        "b_type": key[0],
                        "b_id": key[1],
                        "version": st.version,
                        "last_updated": st.last_updated,
                        "deleted": st.deleted,
                        "content": st.content,
                    }
                )
            old_idx = (
                extract(orjson.loads(before.content)) if before and not before.deleted else None
            )
            new_idx = extract(doc) if doc is not None else None
            kinds = changed_kinds(old_idx, new_idx)
            if not kinds:
                continue
            new_tables = table_rows(key[0], key[1], new_idx) if new_idx is not None else {}
            for kind in kinds:
                if old_idx is not None:
                    idx_delete.setdefault(kind, []).append({"t": key[0], "i": key[1]})
                idx_insert.setdefault(kind, []).extend(new_tables.get(kind, ()))
        await insert_rows(conn, resources, _RESOURCE_COLUMNS, new_rows)
        if upd_rows:
            stmt = (
                update(resources)
                .where(resources.c.res_type == bindparam("b_type"))
                .where(resources.c.res_id == bindparam("b_id"))
                .values(
                    version=bindparam("version"),
                    last_updated=bindparam("last_updated"),
                    deleted=bindparam("deleted"),
                    content=bindparam("content"),
                )
            )
            await conn.execute(stmt, upd_rows)
        await insert_rows(conn, history, _HISTORY_COLUMNS, hist_rows)
        for kind, keys in idx_delete.items():
            table = INDEX_TABLES[kind]
            await conn.execute(
                delete(table).where(
                    table.c.res_type == bindparam("t"), table.c.res_id == bindparam("i")
                ),
                keys,
            )
        for kind, rows in idx_insert.items():
            await insert_rows(conn, INDEX_TABLES[kind], COLUMNS[kind], rows)
        now = clock.now_us()
        await insert_rows(
            conn,
            outbox,
            _OUTBOX_COLUMNS,
            [(e.res_type, e.res_id, e.version, e.action, now, e.principal, False) for e in events],
        )
