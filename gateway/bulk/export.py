"""Running an export: one slice of a job at a time, page by page, type by type.

Each page is the next `bulk_page_size` resources of the current type after the job's cursor, in
id order, as the kick-off asked (level, `_since`, `_typeFilter`, `patient`) and as the owner's
access policy lets it see them now. Their stored bytes become NDJSON lines as they are (no
parsing, no re-serialising: stored content is compact JSON, one line each), appended to the
type's current file, which is split when it would pass `bulk_file_max_bytes`. The lines go into
the database as chunk rows in the same transaction as the cursor that covers them: a worker
that dies mid-page loses the page and its cursor together, and the next worker writes that
page once. Memory holds one page at a time.

What is exported is what was current at the kick-off (`transactionTime`): a resource changed
after it is left out (its version at that time is not re-read from history), so a client
catches up with `_since` = the manifest's transactionTime.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import orjson
from sqlalchemy import and_, insert, or_, select, update

from gateway.access.visibility import division_prefix
from gateway.bulk.jobs import ExportState, Job, Jobs, Progress
from gateway.bulk.spec import ExportSpec, filter_params
from gateway.search.compartment import patient_compartment
from gateway.settings import Settings
from gateway.store.repository import Repository
from gateway.store.tables import bulk_chunks, bulk_files, idx_reference, resources
from gateway.vocab import outcomes
from gateway.vocab.metrics import EXPORT_JOBS

R = resources.c
REF = idx_reference.c
# A chunk row holds up to this many bytes (a page of large resources is several chunks).
CHUNK_BYTES = 1 << 20


def file_name(res_type: str, part: int) -> str:
    return f"{res_type}.{part}.ndjson"


CONTRACT = "https://fhir.jtys.cn/CodeSystem/family-doctor-category|family-doctor-contract"


class Exporter:
    def __init__(self, core: Any, jobs: Jobs, settings: Settings):
        self.core = core
        self.jobs = jobs
        self.settings = settings

    def patient_ids(self, spec: ExportSpec) -> Any:
        """The patients of a Patient or Group export: ids, a subquery, or None (all)."""
        ids: Any = None
        if spec.level == "group":
            if spec.criteria:
                ids = self.by_criteria(spec)
            else:  # the Group's indexed `member` Patient references, less inactive members
                ids = select(REF.target_id).where(
                    REF.res_type == "Group",
                    REF.res_id == spec.group,
                    REF.param == "member",
                    REF.target_type == "Patient",
                )
                if spec.inactive:
                    ids = ids.where(REF.target_id.not_in(spec.inactive))
            if spec.patients:
                picked = ids.subquery()
                ids = select(picked.c[0]).where(picked.c[0].in_(spec.patients))
        elif spec.patients:
            ids = spec.patients
        return ids

    def by_criteria(self, spec: ExportSpec) -> Any:
        """The residents a definitional Group's characteristics pick (gateway.bulk.operations
        .criteria): the searches run as `GET [base]/Type?…` runs them."""
        core = self.core
        q = select(R.res_id).where(R.res_type == "Patient", R.deleted.is_(False))
        for c in spec.criteria:
            if c["kind"] == "division":
                sr = core.parse_search("Patient", [("division", division_prefix(c["value"]))])
                picked = select(R.res_id).where(*core.search_sql.where(sr)).correlate(None)
            else:
                query = [("category", CONTRACT), ("status", "active"), ("care-team", c["value"])]
                sr = core.parse_search("CarePlan", query)
                plans = select(R.res_id).where(*core.search_sql.where(sr)).correlate(None)
                picked = select(REF.target_id).where(
                    REF.res_type == "CarePlan",
                    REF.param == "subject",
                    REF.target_type == "Patient",
                    REF.res_id.in_(plans),
                )
            q = q.where(R.res_id.not_in(picked) if c["exclude"] else R.res_id.in_(picked))
        return q.correlate(None)

    def membership(self, spec: ExportSpec, res_type: str) -> list[Any]:
        """Conditions on `resources` keeping a Patient or Group export to its patients'
        compartments (R4 CompartmentDefinition patient)."""
        if spec.level == "system":
            return []
        ids = self.patient_ids(spec)
        if res_type == "Patient":
            return [] if ids is None else [R.res_id.in_(ids)]
        params = patient_compartment().get(res_type) or ()
        linked = select(REF.res_id).where(
            REF.res_type == res_type, REF.param.in_(params), REF.target_type == "Patient"
        )
        if ids is not None:
            linked = linked.where(REF.target_id.in_(ids))
        return [R.res_id.in_(linked)]

    def type_filter(self, res_type: str, queries: list[str]) -> Any:
        """`_typeFilter`s of one type: OR of each filter's search (its parameters AND-ed)."""
        alts = [
            and_(*self.core.search_sql.where(self.core.parse_search(res_type, filter_params(q))))
            for q in queries
        ]
        return or_(*alts)

    def page_query(
        self, job: Job, spec: ExportSpec, res_type: str, cursor: str | None, repo: Repository
    ) -> Any:
        conds = [
            R.res_type == res_type,
            R.deleted.is_(False),
            R.last_updated <= job.transaction_time,
            *self.membership(spec, res_type),
            *repo.seen(res_type, R.res_type, R.res_id),
        ]
        if spec.since is not None:
            conds.append(R.last_updated > spec.since)
        if cursor is not None:
            conds.append(R.res_id > cursor)
        filters = spec.type_filters.get(res_type)
        if filters:
            conds.append(self.type_filter(res_type, filters))
        return (
            select(R.res_id, R.content)
            .where(*conds)
            # (res_type, res_id): the primary key's order, so each page is an index range
            # (ordered by res_id alone, SQLite sorts every row of the type for every page)
            .order_by(R.res_type, R.res_id)
            .limit(self.settings.bulk_page_size)
        )

    async def run_slice(
        self, job: Job, worker: str, repo: Repository, stopping: Any = None
    ) -> bool:
        """Work on the job for up to bulk_slice_seconds; True while there is more to do,
        False when it is finished (completed) or gone (cancelled, lease lost)."""
        spec = ExportSpec.from_json(job.spec)
        state = ExportState.load(job.state) if job.state else ExportState()
        deadline = time.monotonic() + self.settings.bulk_slice_seconds
        while True:
            if state.index >= len(spec.types):
                if not await self._close(job, spec, state, worker):
                    return False
                done = await self.jobs.finish(
                    job.job_id, worker, "completed", self.settings.bulk_retention
                )
                if done:
                    EXPORT_JOBS.labels("completed").inc()
                return False
            if time.monotonic() > deadline or (stopping is not None and stopping.is_set()):
                return True
            res_type = spec.types[state.index]
            q = self.page_query(job, spec, res_type, state.cursor, repo)
            async with self.core.store.read_engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            if not rows:
                state.index, state.cursor, state.current = state.index + 1, None, None
                if not await self.commit(job, worker, state, [], {}):
                    return False
                continue
            chunks, files = self._append(res_type, rows, state)
            state.cursor = rows[-1][0]
            state.written[res_type] = state.written.get(res_type, 0) + len(rows)
            if not await self.commit(job, worker, state, chunks, files):
                return False

    def _append(
        self, res_type: str, rows: list[Any], state: ExportState
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[bool, Progress]]]:
        """The page's lines as chunk rows of the type's files (a new file when the current
        one would pass the size limit); files: name → (first chunk now, progress)."""
        limit = self.settings.bulk_file_max_bytes
        cur = Progress(**state.current) if state.current else None
        chunks: list[dict[str, Any]] = []
        files: dict[str, tuple[bool, Progress]] = {}
        buf = bytearray()
        lines = 0

        def flush() -> None:
            nonlocal buf, lines
            if cur is None or not lines:
                return
            first = cur.chunks == 0
            chunks.append({"name": cur.name, "seq": cur.chunks, "data": bytes(buf)})
            cur.chunks += 1
            cur.size += len(buf)
            cur.count += lines
            new = files.get(cur.name, (first, cur))[0]
            files[cur.name] = (new, Progress(**asdict(cur)))
            buf, lines = bytearray(), 0

        for _, content in rows:
            line = bytes(content) + b"\n"
            if cur is None or (cur.count + lines > 0 and cur.size + len(buf) + len(line) > limit):
                flush()
                part = state.parts.get(res_type, 0) + 1
                state.parts[res_type] = part
                cur = Progress(file_name(res_type, part), part)
            elif len(buf) + len(line) > CHUNK_BYTES:
                flush()
            buf += line
            lines += 1
        flush()
        state.current = asdict(cur) if cur is not None else None
        return chunks, files

    async def commit(
        self,
        job: Job,
        worker: str,
        state: Any,  # ExportState or ImportState: what to_json() records as the job's state
        chunks: list[dict[str, Any]],
        files: dict[str, tuple[bool, Progress]],
        kind: str = "output",
    ) -> bool:
        """The lines and the cursor covering them, in one transaction (the job row first)."""
        async with self.jobs.writing() as conn:
            if not await self.jobs.advance(
                conn, job.job_id, worker, self.settings.bulk_lease_seconds, state.to_json()
            ):
                await conn.rollback()
                return False
            if chunks:
                await conn.execute(
                    insert(bulk_chunks), [{"job_id": job.job_id, **c} for c in chunks]
                )
            for name, (new, p) in files.items():
                values = {"count": p.count, "size": p.size, "chunks": p.chunks}
                if new:
                    res_type = name.split(".", 1)[0]
                    await conn.execute(
                        insert(bulk_files).values(
                            job_id=job.job_id,
                            name=name,
                            kind=kind,
                            res_type=res_type,
                            part=p.part,
                            **values,
                        )
                    )
                else:
                    await conn.execute(
                        update(bulk_files)
                        .where(bulk_files.c.job_id == job.job_id, bulk_files.c.name == name)
                        .values(**values)
                    )
        return True

    async def _close(self, job: Job, spec: ExportSpec, state: ExportState, worker: str) -> bool:
        """Before completing: the error file (parameters ignored under handling=lenient)."""
        if not spec.warnings or state.parts.get("OperationOutcome"):
            return True
        issues = [outcomes.Issue("not-supported", w, "GW-1862", "warning") for w in spec.warnings]
        lines = b"".join(orjson.dumps(outcomes.outcome_json([i])) + b"\n" for i in issues)
        state.parts["OperationOutcome"] = 1
        p = Progress(file_name("OperationOutcome", 1), 1, len(spec.warnings), len(lines), 1)
        chunk = {"name": p.name, "seq": 0, "data": lines}
        return await self.commit(job, worker, state, [chunk], {p.name: (True, p)}, "error")
