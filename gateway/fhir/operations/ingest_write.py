"""Mapped records written through the FHIR core's transaction interaction: validation, access
control, the write hooks (policy rules) and provenance apply exactly as to a client's Bundle.

Each record stands or falls alone, and the outcome is the one of one transaction per record,
in the order of the request; but records are written many to a transaction while they can
be (a transaction's fixed cost, its commit above all, is most of a small record's): a batch
that fails on records it can name (validation, an unresolved reference) is written again
without them; one that fails on a rule whose record it cannot tell is split in two, the
first half written before the second, down to single records (and so is one that deadlocked
with another request's batch). Records that write the same resource never share a batch.

A resource that accumulates across records (a household Group) is read first and written
merged, on its version (`If-Match`) or created with `ifNoneExist`; when another writer got
there first (412, or the create matched), the record is merged onto the new state and tried
again: concurrent records of one household never lose each other's members. Within a process
the writers of one merged resource take turns (a lock per business key), so retries are for
writers in other processes only.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from typing import Any
from weakref import WeakValueDictionary

import orjson
from sqlalchemy.exc import DBAPIError

from gateway.fhir.operations.ingest_refs import References, references
from gateway.fhir.operations.ingest_report import (
    REJECTED,
    STORED,
    UPDATED,
    RecordResult,
    located_issues,
    problem_issue,
)
from gateway.fhir.request import FhirRequest
from gateway.fhir.router import Call
from gateway.mapping.plan import (
    Current,
    MappedRecord,
    Planned,
    coalesce,
    conflicts,
    transaction_entries,
)
from gateway.vocab import outcomes
from gateway.vocab.outcomes import Issue, OperationOutcomeError

ATTEMPTS = 10
BATCH = 50  # records per transaction at most: bounds how long a batch holds the rules' locks
# One lock per merged resource's key in this process, gone when no writer holds it.
_turns: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()


class _Raced(Exception):
    """A merged resource was created by another writer between reading and writing it."""


class Writer:
    """Writes one request's records; remembers what the request's references resolved to."""

    def __init__(self, call: Call):
        self.call = call
        self.references = References(call)

    async def records(self, records: list[MappedRecord]) -> list[RecordResult]:
        """Every record stored or rejected on its own (see the module's docstring)."""
        results: dict[int, RecordResult] = {}
        batch: list[MappedRecord] = []
        for record in records:
            if not record.ok:
                results[record.number] = _rejected(record)
                continue
            if len(batch) == BATCH or conflicts([*batch, record]):
                await self._batch(batch, results)
                batch = []
            batch.append(record)
        await self._batch(batch, results)
        return [results[r.number] for r in records]

    async def _batch(self, batch: list[MappedRecord], results: dict[int, RecordResult]) -> None:
        if len(batch) <= 1:
            for record in batch:
                results[record.number] = await self.record(record)
            return
        planned = coalesce(batch)
        entries = [(r.number, p) for r, p in planned]
        targets, alone = await self.references.resolve(entries)
        entries = _lock_order(entries, targets)
        if alone:  # a search they name matches nothing yet: each its own transaction, later
            await self._batch([r for r in batch if r.number not in alone], results)
            for record in batch:
                if record.number in alone:
                    results[record.number] = await self.record(record)
            return
        try:
            statuses = await self._write(entries, targets)
        except DBAPIError as exc:
            if not _contended(exc):
                raise
            # Two batches took the rules' locks (a team's, a resident's) in opposite orders, or
            # waited past the statement timeout for them: the smaller the batch, the fewer
            # locks it holds, and the shorter.
            half = len(batch) // 2
            await self._batch(batch[:half], results)
            await self._batch(batch[half:], results)
            return
        except OperationOutcomeError as err:
            by_record = located_issues(err, entries, _shared(batch, entries))
            if 0 in by_record or not by_record:  # whose it is cannot be told: halve
                half = len(batch) // 2
                await self._batch(batch[:half], results)
                await self._batch(batch[half:], results)
                return
            for record in batch:
                if record.number in by_record:
                    results[record.number] = _rejected(record, by_record[record.number])
            await self._batch([r for r in batch if r.number not in by_record], results)
            return
        for record in batch:
            results[record.number] = RecordResult(record.number, record.key)
        for (number, _), status in zip(entries, statuses, strict=True):
            _fill(results[number], [status])

    async def record(self, record: MappedRecord) -> RecordResult:
        """One record, one transaction: stored, or rejected with its problems."""
        if not record.ok:
            return _rejected(record)
        result = RecordResult(record.number, record.key)
        entries = [(record.number, p) for p in record.entries]
        try:
            targets, _ = await self.references.resolve(entries)
            statuses = await self._write(entries, targets)
        except OperationOutcomeError as err:
            located = located_issues(err, entries).get(record.number)
            result.issues = located or [i.to_json() for i in err.issues]
            return result
        result.issues = [problem_issue(record.number, p) for p in record.problems]  # warnings
        _fill(result, statuses)
        return result

    async def atomic(self, records: list[MappedRecord]) -> list[RecordResult]:
        """All records in one transaction; any problem fails them all (raised, each issue
        located by record and field)."""
        planned = coalesce(records) if all(r.ok for r in records) else []
        bad = [
            problem_issue(r.number, p) for r in records for p in r.problems if p.severity == "error"
        ]
        if bad:
            raise OperationOutcomeError([Issue("invalid", "", rendered=i) for i in bad], 422)
        entries = [(r.number, p) for r, p in planned]
        try:
            targets, _ = await self.references.resolve(entries)
            statuses = await self._write(entries, targets)
        except OperationOutcomeError as err:
            by_record = located_issues(err, entries)
            issues = [i for n in sorted(by_record) for i in by_record[n]]
            raise OperationOutcomeError(
                [Issue("invalid", "", rendered=i) for i in issues], err.status
            ) from None
        results = {r.number: RecordResult(r.number, r.key) for r in records}
        for (number, _), status in zip(entries, statuses, strict=True):
            _fill(results[number], [status])
        return list(results.values())

    async def _write(
        self, entries: list[tuple[int, Planned]], targets: dict[str, str]
    ) -> list[tuple[int, str]]:
        """(HTTP status, Type/id) per entry, after retrying races on merged resources."""
        planned = [p for _, p in entries]
        keys = sorted({f"{p.type}?{p.query}" for p in planned if p.spec.merge and p.query})
        async with AsyncExitStack() as turns:
            for key in keys:  # sorted: two records never wait for each other's locks
                await turns.enter_async_context(_turns.setdefault(key, asyncio.Lock()))
            for attempt in range(ATTEMPTS):
                if attempt:  # another process wrote it meanwhile: let it finish
                    await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
                bundle = {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": transaction_entries(planned, await self._current(planned), targets),
                }
                try:
                    return await self._transaction(bundle, planned)
                except _Raced:
                    continue
                except OperationOutcomeError as err:
                    if err.status == 412 and keys and attempt < ATTEMPTS - 1:
                        continue
                    raise
        raise outcomes.error(
            409, "conflict", "GW-1714", "A merged resource kept changing while it was written"
        )

    async def _current(self, planned: list[Planned]) -> dict[str, Current | None]:
        current: dict[str, Current | None] = {}
        for p in planned:
            if p.spec.merge is None or p.query is None:
                continue
            found = await self.call.core.conditional_match(self.call.repo, p.type, p.query)
            if len(found) > 1:
                raise outcomes.multiple_matches(
                    f"{p.type}?{p.query} matches {len(found)} resources (one is expected)"
                )
            st = found[0] if found else None
            current[p.full_url] = (
                Current(st.res_id, str(st.version), orjson.loads(st.content)) if st else None
            )
        return current

    async def _transaction(
        self, bundle: dict[str, Any], planned: list[Planned]
    ) -> list[tuple[int, str]]:
        call = self.call
        req = FhirRequest(
            method="POST",
            path="",
            headers={"prefer": "return=minimal"},
            json_body=bundle,
            base_url=call.req.base_url,
            context=call.req.context,
        )
        slot = call.req.context.audit
        saved = (slot.interaction, slot.res_type, slot.res_id) if slot is not None else None
        try:
            resp = await call.core.router.dispatch(call.core, req, call.repo)
        finally:
            if slot is not None and saved is not None:  # the request's AuditEvent: $ingest
                slot.interaction, slot.res_type, slot.res_id = saved
        body = resp.body if isinstance(resp.body, bytes) else orjson.dumps(resp.body)
        out: list[tuple[int, str]] = []
        for entry, sent, p in zip(
            orjson.loads(body).get("entry") or [], bundle["entry"], planned, strict=True
        ):
            response = entry.get("response") or {}
            status = int(str(response.get("status", "200")).split()[0])
            if p.spec.merge is not None and sent["request"]["method"] == "POST" and status != 201:
                raise _Raced()  # created meanwhile by another writer: merge into that one
            out.append((status, str(response.get("location", "")).split("/_history/", 1)[0]))
        return out


_CONTENDED = {"DeadlockDetectedError", "SerializationError", "QueryCanceledError"}


def _contended(exc: DBAPIError) -> bool:
    """A deadlock, or a lock waited for past the statement timeout (asyncpg's errors, wrapped
    by SQLAlchemy's adapter, whose cause they are)."""
    causes = (exc.orig, getattr(exc.orig, "__cause__", None))
    names = {c.__name__ for cause in causes if cause is not None for c in type(cause).__mro__}
    return bool(names & _CONTENDED)


def _lock_order(
    entries: list[tuple[int, Planned]], targets: dict[str, str]
) -> list[tuple[int, Planned]]:
    """The batch's records in the order of what they name (their team, institution,
    resident, …), each record's entries together. The rules lock what a record names (a
    team's capacity, a resident's contracts) as the transaction checks its resources, and
    hold the locks to commit: batches that lock in one order cannot deadlock each other.
    Which records stand does not depend on it (a batch is all or nothing; it is split in the
    order the records came)."""
    names: dict[int, list[str]] = {}
    for number, p in entries:
        for node in references(p.resource):
            names.setdefault(number, []).append(targets.get(node["reference"], ""))
    order = sorted({n for n, _ in entries}, key=lambda n: (sorted(names.get(n, [])), n))
    rank = {n: i for i, n in enumerate(order)}
    return sorted(entries, key=lambda e: rank[e[0]])


def _shared(batch: list[MappedRecord], entries: list[tuple[int, Planned]]) -> set[int]:
    """Entries several records of the batch merged into (a household they share): a problem
    there is no one record's."""
    count: dict[str, int] = {}
    for record in batch:
        for p in record.entries:
            if p.spec.merge is not None:
                key = f"{p.type}?{p.query}"
                count[key] = count.get(key, 0) + 1
    return {
        i
        for i, (_, p) in enumerate(entries)
        if p.spec.merge is not None and count.get(f"{p.type}?{p.query}", 0) > 1
    }


def _rejected(record: MappedRecord, issues: list[dict[str, Any]] | None = None) -> RecordResult:
    result = RecordResult(record.number, record.key)
    result.issues = issues or [problem_issue(record.number, p) for p in record.problems]
    return result


def _fill(result: RecordResult, statuses: list[tuple[int, str]]) -> None:
    """The record's status is its first resource's: stored when that one was created."""
    for status, ref in statuses:
        if result.status == REJECTED:
            result.status = STORED if status == 201 else UPDATED
        (result.created if status == 201 else result.updated).append(ref)
