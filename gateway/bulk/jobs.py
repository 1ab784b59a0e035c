"""Bulk jobs in the database: created at kick-off, claimed by one worker at a time (a lease),
advanced by commits that carry their lines and their cursor together, cancelled and expired.

Any number of workers share the table: a claim is a compare-and-set on the lease, so two
workers never run one job at once, and a job whose worker died is taken over once its lease
has expired. The job least recently worked on is claimed first (`turn`), so concurrent jobs
share the workers in rotation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.engine import write_transaction
from gateway.store.tables import bulk_chunks, bulk_files, bulk_jobs
from gateway.vocab import clock

J = bulk_jobs.c
F = bulk_files.c
C = bulk_chunks.c
ACTIVE = ("queued", "running")


@dataclass
class Job:
    job_id: str
    kind: str
    status: str
    owner: str
    organization: str | None
    role: str | None
    scopes: str | None
    request: str
    spec: str
    state: dict[str, Any]
    transaction_time: int
    created_at: int
    expires_at: int | None
    error: str | None
    turn: int


@dataclass
class FileRow:
    name: str
    kind: str
    res_type: str
    part: int
    count: int
    size: int
    chunks: int


@dataclass
class Progress:
    """A running part of a file: its name and where its next chunk goes."""

    name: str
    part: int
    count: int = 0
    size: int = 0
    chunks: int = 0


@dataclass
class ExportState:
    index: int = 0  # which of the spec's types is being written
    cursor: str | None = None  # the last id written of that type
    written: dict[str, int] = field(default_factory=dict)  # type → resources written
    parts: dict[str, int] = field(default_factory=dict)  # type → files started
    current: dict[str, Any] | None = None  # the open file (Progress as a dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def load(cls, raw: dict[str, Any]) -> ExportState:
        return cls(**raw)


def _job(row: Any) -> Job:
    return Job(
        row.job_id,
        row.kind,
        row.status,
        row.owner,
        row.organization,
        row.role,
        row.scopes,
        row.request,
        row.spec,
        json.loads(row.state),
        row.transaction_time,
        row.created_at,
        row.expires_at,
        row.error,
        row.turn,
    )


def _file(r: Any) -> FileRow:
    m = r._mapping  # (Row.count is a method)
    return FileRow(
        m["name"], m["kind"], m["res_type"], m["part"], m["count"], m["size"], m["chunks"]
    )


class Jobs:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite: no lock upgrade to fail)."""
        async with write_transaction(self.engine) as conn:
            yield conn

    async def create(self, **values: Any) -> None:
        now = clock.now_us()
        row = {
            "status": "queued",
            "state": "{}",
            "created_at": now,
            "updated_at": now,
            "turn": 0,
            **values,
        }
        async with self.writing() as conn:
            await conn.execute(insert(bulk_jobs).values(**row))

    async def active_count(self, owner: str) -> int:
        q = select(func.count()).where(J.owner == owner, J.status.in_(ACTIVE))
        async with self.engine.connect() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def get(self, job_id: str) -> Job | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(bulk_jobs).where(J.job_id == job_id))).first()
        if row is None:
            return None
        job = _job(row)
        if job.expires_at is not None and job.expires_at < clock.now_us():
            return None  # expired: gone, whether or not the sweep has deleted it yet
        return job

    async def files(self, job_id: str) -> list[FileRow]:
        q = select(bulk_files).where(F.job_id == job_id).order_by(F.kind.desc(), F.res_type, F.part)
        async with self.engine.connect() as conn:
            return [_file(r) for r in await conn.execute(q)]

    async def file(self, job_id: str, name: str) -> FileRow | None:
        q = select(bulk_files).where(F.job_id == job_id, F.name == name)
        async with self.engine.connect() as conn:
            r = (await conn.execute(q)).first()
        return None if r is None else _file(r)

    async def chunks(self, job_id: str, name: str, count: int) -> AsyncIterator[bytes]:
        """A file's bytes, one chunk (one statement) at a time: constant memory."""
        for seq in range(count):
            q = select(C.data).where(C.job_id == job_id, C.name == name, C.seq == seq)
            async with self.engine.connect() as conn:
                data = (await conn.execute(q)).scalar()
            if data is None:  # cancelled or expired while being read
                return
            yield bytes(data)

    async def claim(
        self, worker: str, lease: float, job_id: str | None = None, restricts: bool = True
    ) -> Job | None:
        """Take a runnable job (this one, or the one waiting longest) for `lease` seconds. A
        worker that cannot apply access policies (`restricts` False: authentication off in its
        settings) takes only the jobs started without one: a job started under a policy must
        never run unfiltered because a worker was configured differently."""
        now = clock.now_us()
        free = or_(J.lease_until.is_(None), J.lease_until < now)
        if not restricts:
            free = and_(free, J.role.is_(None))
        q = select(J.job_id).where(J.status.in_(ACTIVE), free).order_by(J.turn).limit(8)
        if job_id is not None:
            q = q.where(J.job_id == job_id)
        async with self.engine.connect() as conn:
            candidates = list((await conn.execute(q)).scalars())
        for candidate in candidates:
            async with self.writing() as conn:
                done = await conn.execute(
                    update(bulk_jobs)
                    .where(J.job_id == candidate, J.status.in_(ACTIVE), free)
                    .values(
                        status="running",
                        lease_owner=worker,
                        lease_until=now + int(lease * 1_000_000),
                        updated_at=now,
                    )
                )
                if done.rowcount != 1:
                    continue
                row = (await conn.execute(select(bulk_jobs).where(J.job_id == candidate))).one()
            return _job(row)
        return None

    async def runnable(self) -> list[tuple[str, int]]:
        """(job, turn) of the jobs waiting for a worker (unclaimed or abandoned)."""
        now = clock.now_us()
        q = (
            select(J.job_id, J.turn)
            .where(J.status.in_(ACTIVE), or_(J.lease_until.is_(None), J.lease_until < now))
            .order_by(J.turn)
            .limit(100)
        )
        async with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in await conn.execute(q)]

    @staticmethod
    async def advance(
        conn: AsyncConnection, job_id: str, worker: str, lease: float, state: str
    ) -> bool:
        """Record progress in the caller's transaction (first: it locks the job row); False
        when the job was cancelled or its lease taken over (the caller rolls back)."""
        now = clock.now_us()
        done = await conn.execute(
            update(bulk_jobs)
            .where(J.job_id == job_id, J.status == "running", J.lease_owner == worker)
            .values(state=state, updated_at=now, lease_until=now + int(lease * 1_000_000))
        )
        return done.rowcount == 1

    async def release(self, job_id: str, worker: str) -> int | None:
        """Give the job back to the rotation (its turn is now: others go first); the turn,
        None when the job is no longer this worker's."""
        now = clock.now_us()
        async with self.writing() as conn:
            done = await conn.execute(
                update(bulk_jobs)
                .where(J.job_id == job_id, J.lease_owner == worker)
                .values(lease_owner=None, lease_until=None, turn=now)
            )
        return now if done.rowcount == 1 else None

    async def finish(
        self, job_id: str, worker: str, status: str, retention: int, error: str | None = None
    ) -> bool:
        now = clock.now_us()
        async with self.writing() as conn:
            done = await conn.execute(
                update(bulk_jobs)
                .where(J.job_id == job_id, J.status == "running", J.lease_owner == worker)
                .values(
                    status=status,
                    error=error,
                    updated_at=now,
                    expires_at=now + retention * 1_000_000,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            return done.rowcount == 1

    async def delete(self, job_id: str) -> None:
        """Cancel (a running job stops at its next commit) or remove: the job and its files."""
        async with self.writing() as conn:
            await self._delete(conn, [job_id])

    @staticmethod
    async def _delete(conn: AsyncConnection, ids: list[str]) -> None:
        await conn.execute(delete(bulk_jobs).where(J.job_id.in_(ids)))
        await conn.execute(delete(bulk_files).where(F.job_id.in_(ids)))
        await conn.execute(delete(bulk_chunks).where(C.job_id.in_(ids)))

    async def expire(self) -> int:
        """Delete the jobs whose files have expired, and their files; how many."""
        now = clock.now_us()
        q = select(J.job_id).where(and_(J.expires_at.is_not(None), J.expires_at < now)).limit(100)
        async with self.engine.connect() as conn:  # a read first: most sweeps find nothing
            ids = list((await conn.execute(q)).scalars())
        if ids:
            async with self.writing() as conn:
                await self._delete(conn, ids)
        return len(ids)
