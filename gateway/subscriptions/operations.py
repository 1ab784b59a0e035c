"""Subscription operations (R5 backport IG on R4):

- `GET Subscription/{id}/$status`: a Bundle (searchset) with the subscription's status
  (Parameters, backport-subscription-status-r4, type query-status): status,
  events-since-subscription-start, the last error.
- `GET Subscription/{id}/$events?eventsSinceNumber=&eventsUntilNumber=&content=`: a
  notification Bundle (history, type query-event) of those events, so a receiver that found a
  gap in the event numbers catches up; content as the subscription's, or narrower.
- `POST Subscription/{id}/$replay` (administrators; anyone with authentication off): the
  dead-letter list back to pending and the subscription back to active.

Each answers only for a Subscription the client may read (404 otherwise), and `$events` only
with the resources the client may see.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import select

from gateway.events.domain import topics
from gateway.fhir.operations import Operation
from gateway.fhir.operations.params import operation_params
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.store.model import Stored
from gateway.subscriptions.notify import Item, notification_bundle, status_parameters
from gateway.subscriptions.service import replay
from gateway.subscriptions.spec import CONTENTS, SpecError, SubSpec, read_spec
from gateway.subscriptions.tables import sub_events, sub_state
from gateway.vocab import clock, outcomes

E = sub_events.c
MAX_EVENTS = 1000  # events one $events answer holds at most (ask again from the last number)


async def _subscription(call: Call) -> tuple[Stored, SubSpec | None, dict[str, Any]]:
    assert call.res_id
    st = await call.repo.read("Subscription", call.res_id)
    if st is None:
        raise outcomes.not_found("Subscription", call.res_id)
    if st.deleted:
        raise outcomes.gone("Subscription", call.res_id, st.version)
    res = orjson.loads(st.content)
    try:
        spec = read_spec(res, st.version, topics(call.core.settings.profiles_dir / "subscriptions"))
    except SpecError:
        spec = None
    async with call.repo.store.read_engine.connect() as conn:
        row = (
            await conn.execute(select(sub_state).where(sub_state.c.sub_id == call.res_id))
        ).first()
    state = dict(row._mapping) if row else {}
    return st, spec, {"resource": res, **state}


def _fallback(st: Stored, res: dict[str, Any]) -> SubSpec:
    """A spec for a Subscription the gateway cannot serve: its status can still be told."""
    return SubSpec(
        st.res_id, st.version, str(res.get("status")), "criteria", None, (), None, (), "",
        (), "bundle", "empty", None, None, None, None,
    )  # fmt: skip


def _int(params: dict[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise outcomes.bad_request(f"{name} {raw!r} is not an integer", name) from None
    if value < 0:
        raise outcomes.bad_request(f"{name} must not be negative", name)
    return value


async def subscription_status(call: Call) -> FhirResponse:
    st, spec, state = await _subscription(call)
    res = state["resource"]
    spec = spec or _fallback(st, res)
    status = str(res.get("status") or state.get("status") or "requested")
    params = status_parameters(
        spec,
        call.req.base_url,
        status,
        "query-status",
        int(state.get("events_total") or 0),
        error=state.get("error") or res.get("error"),
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": clock.to_instant(clock.now_us()),
        "total": 1,
        "link": [{"relation": "self", "url": f"{call.req.base_url}/{st.ref}/$status"}],
        "entry": [
            {
                "fullUrl": f"urn:uuid:{params['id']}",
                "resource": params,
                "search": {"mode": "match"},
            }
        ],
    }
    return FhirResponse(200, bundle)


async def subscription_events(call: Call) -> FhirResponse:
    st, spec, state = await _subscription(call)
    if spec is None:
        raise outcomes.error(
            422, "processable", "GW-1000", f"Subscription/{st.res_id} is not served"
        )
    params = operation_params(call.req)
    since = _int(params, "eventsSinceNumber")
    until = _int(params, "eventsUntilNumber")
    content = params.get("content") or spec.content
    if content not in CONTENTS:
        raise outcomes.bad_request(f"content {content!r} is not one of {CONTENTS}", "content")
    q = select(sub_events).where(E.sub_id == st.res_id)
    if since is not None:
        q = q.where(E.number >= since)
    if until is not None:
        q = q.where(E.number <= until)
    q = q.order_by(E.number).limit(MAX_EVENTS)
    async with call.repo.store.read_engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    contents: dict[tuple[str, str, int], bytes] = {}
    if content == "full-resource":
        for r in rows:  # read as the client may see it
            v = await call.repo.vread(r.res_type, r.res_id, r.version)
            if v is not None and not v.deleted:
                contents[(r.res_type, r.res_id, r.version)] = v.content
    elif content == "id-only":
        keys = sorted({(r.res_type, r.res_id) for r in rows})
        seen = await call.repo.visible(keys)
        rows = [r for r in rows if (r.res_type, r.res_id) in seen or r.action == "delete"]
    items = [
        Item(
            r.number,
            r.res_type,
            r.res_id,
            r.version,
            r.action,
            r.topic_events,
            r.created_at,
            contents.get((r.res_type, r.res_id, r.version)),
        )
        for r in rows
        if content != "full-resource" or (r.res_type, r.res_id, r.version) in contents
    ]
    shown = replace(spec, content=content)
    status = str(state["resource"].get("status") or "active")
    bundle = notification_bundle(
        shown, call.req.base_url, status, "query-event", int(state.get("events_total") or 0), items
    )
    return FhirResponse(200, bundle)


async def subscription_replay(call: Call) -> FhirResponse:
    ctx = call.repo.ctx
    if ctx.access is not None and ctx.role != "admin":
        raise outcomes.forbidden("Only an administrator may replay a subscription's dead letters")
    st, _, _ = await _subscription(call)
    count = await replay(call.repo.store, st.res_id)
    out = {
        "resourceType": "Parameters",
        "parameter": [{"name": "replayed", "valueInteger": count}],
    }
    return FhirResponse(200, out)


STATUS = Operation(
    "status",
    subscription_status,
    frozenset({"instance"}),
    frozenset({"Subscription"}),
    frozenset({"GET"}),
    "https://fhir.jtys.cn/OperationDefinition/subscription-status",
)
EVENTS = Operation(
    "events",
    subscription_events,
    frozenset({"instance"}),
    frozenset({"Subscription"}),
    frozenset({"GET", "POST"}),
    "https://fhir.jtys.cn/OperationDefinition/subscription-events",
)
REPLAY = Operation(
    "replay",
    subscription_replay,
    frozenset({"instance"}),
    frozenset({"Subscription"}),
    frozenset({"POST"}),
    "https://fhir.jtys.cn/OperationDefinition/subscription-replay",
)
