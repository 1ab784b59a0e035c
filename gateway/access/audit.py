"""Audit and provenance, with authentication on.

- Provenance: every write leaves one, in the write's own transaction: its targets are the
  versions written (`Patient/1/_history/2`), its agent the client's Organization (the client
  id as the reference's identifier), so `_revinclude=Provenance:target` shows who wrote what
  and the `own` access rule can find what an organisation wrote.
- AuditEvent: every access leaves exactly one, in the style of IHE Basic Audit Log Patterns
  (type rest, subtype the FHIR interaction, action C/R/U/D/E, outcome 0/4/8, the client and its
  organisation as agents, the resource or the query as entity). A successful write records
  its AuditEvent in its own transaction; everything else (reads, searches, failures) goes to
  a batch written off the request path, within FLUSH_SECONDS. The audit trail is append-only
  (no client may write AuditEvent) and visible to administrators only (access.yaml).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.store.model import Stored, Write
from gateway.store.repository import Repository
from gateway.store.store import Store
from gateway.vocab import clock
from gateway.vocab.context import RequestContext
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger("gateway.audit")

CLIENT_SYSTEM = "https://fhir.jtys.cn/sid/client"
REQUEST_SYSTEM = "https://fhir.jtys.cn/sid/request-id"
FLUSH_SECONDS = 1.0
BATCH = 500
_EVENT_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ACTIONS = {"create": "C", "update": "U", "patch": "U", "delete": "D", "transaction": "E"}
_SOURCE = {"observer": {"display": "fhir-family-doctor-gateway"}}
_PROVENANCE_ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


@dataclass(slots=True)
class AuditSlot:
    """What one request did, filled in as it is handled (the router names the interaction;
    a write's transaction records its AuditEvent and says so)."""

    interaction: str | None = None
    res_type: str | None = None
    res_id: str | None = None
    recorded_in_transaction: bool = False
    entities: list[str] = field(default_factory=list)


def _agents(ctx: RequestContext) -> list[dict[str, Any]]:
    who: dict[str, Any] = {"identifier": {"system": CLIENT_SYSTEM, "value": ctx.principal}}
    if ctx.organization:
        who["reference"] = ctx.organization
    return [{"who": who, "requestor": True}]


def audit_event(
    ctx: RequestContext, slot: AuditSlot, method: str, url: str, status: int
) -> dict[str, Any]:
    interaction = slot.interaction or "operation"
    action = _ACTIONS.get(interaction, "R" if method in ("GET", "HEAD") else "E")
    subtype = {"system": _INTERACTION, "code": interaction}
    if interaction.startswith("$"):  # restful-interaction has one code for every operation
        subtype = {"system": _INTERACTION, "code": "operation", "display": interaction}
    outcome = "0" if status < 400 else "4" if status < 500 else "8"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _EVENT_TYPE,
        "subtype": [subtype],
        "action": action,
        "recorded": clock.to_instant(clock.now_us()),
        "outcome": outcome,
        "outcomeDesc": f"HTTP {status}",
        "agent": _agents(ctx),
        "source": _SOURCE,
    }
    entities: list[dict[str, Any]] = [{"what": {"reference": e}} for e in slot.entities]
    if not entities and slot.res_type and slot.res_id:
        entities.append({"what": {"reference": f"{slot.res_type}/{slot.res_id}"}})
    query = url.partition("?")[2]
    if query:
        entities.append(
            {
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                },
                "description": f"{method} {url.partition('?')[0]}",
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    if entities:
        event["entity"] = entities
    if ctx.request_id:  # X-Request-ID: the request in the gateway's logs
        event["entity"] = [
            *event.get("entity", []),
            {"what": {"identifier": {"system": REQUEST_SYSTEM, "value": ctx.request_id}}},
        ]
    return event


def _activity(written: Sequence[Stored]) -> str:
    if all(st.deleted for st in written):
        return "DELETE"
    return "CREATE" if all(st.created for st in written) else "UPDATE"


def provenance(ctx: RequestContext, written: Sequence[Stored], activity: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [
            {"reference": f"{st.res_type}/{st.res_id}/_history/{st.version}"} for st in written
        ],
        "recorded": clock.to_instant(clock.now_us()),
        "activity": {"coding": [{"system": _PROVENANCE_ACTIVITY, "code": activity}]},
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": _agents(ctx)[0]["who"],
            }
        ],
    }


async def annotate(repo: Repository, written: list[Stored]) -> list[Write]:
    """Store annotator (in the write's transaction): a Provenance for what was written and,
    once per request, the AuditEvent of a successful write."""
    ctx = repo.ctx
    if ctx.access is None:
        return []
    out = []
    # One Provenance per activity (CREATE, UPDATE, DELETE): who created a resident's record is
    # what the `registered` access selector asks.
    by_activity: dict[str, list[Stored]] = {}
    for st in written:
        by_activity.setdefault(_activity([st]), []).append(st)
    for activity, stored in by_activity.items():
        doc = provenance(ctx, stored, activity)
        out.append(Write("Provenance", str(uuid.uuid4()), doc, "POST", create_only=True))
    slot = ctx.audit
    first = isinstance(slot, AuditSlot) and not slot.recorded_in_transaction
    if first and slot.interaction not in ("batch", None):
        slot.entities = [f"{st.res_type}/{st.res_id}/_history/{st.version}" for st in written]
        method = {"create": "POST", "delete": "DELETE"}.get(slot.interaction or "", "PUT")
        event = audit_event(ctx, slot, method, "", 200)
        out.append(Write("AuditEvent", str(uuid.uuid4()), event, "POST", create_only=True))
        slot.recorded_in_transaction = True
    return out


class AuditLog:
    """AuditEvents of reads and failures, written in batches by a background task."""

    def __init__(self, store: Store):
        self.store = store
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100_000)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    def record(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # never block a request on the audit trail; say so loudly
            log.error("audit queue full: an AuditEvent was dropped")

    async def flush(self) -> None:
        """Write what is queued now (tests; shutdown)."""
        batch: list[dict[str, Any]] = []
        while not self._queue.empty() and len(batch) < BATCH:
            batch.append(self._queue.get_nowait())
        if batch:
            writes = [
                Write("AuditEvent", str(uuid.uuid4()), e, "POST", create_only=True) for e in batch
            ]
            try:
                await self.store.repository(RequestContext.system()).apply(writes)
            except Exception:
                for event in batch:  # kept for the next flush
                    self.record(event)
                raise
        if not self._queue.empty():
            await self.flush()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - keep auditing; the next flush retries
                log.exception("writing AuditEvents failed")

    async def stop(self) -> None:
        """Write what is queued and end (never cancelled inside a write transaction)."""
        if self._task is None:
            return
        self._stopping.set()
        await finish_or_cancel([self._task], 30)
