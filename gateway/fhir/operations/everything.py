"""Patient $everything: GET /Patient/{id}/$everything and GET /Patient/$everything.

Every resource in the Patient compartment (R4 CompartmentDefinition, gateway/search/data) plus
the Practitioners, Organizations, Locations and Medications they refer to; `_since`, `_type`,
`start`/`end` (care dates, gateway/search/data/care-dates.json), `_count` with keyset
`next`/`previous` links (ordered by type, then id). At type level: the
same for every Patient the client may see (no access policy yet: all of them).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.operations import Operation
from gateway.fhir.operations.params import operation_params
from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.search.compartment import PatientIds, everything_keys, in_care_period
from gateway.search.paging import beyond, decode_cursor, encode_cursor, order_by
from gateway.search.query_values import date_range
from gateway.store.tables import resources
from gateway.vocab import outcomes
from gateway.vocab.params import MAX_BIGINT, is_uint

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"


def _types(params: dict[str, Any]) -> list[str] | None:
    raw = params.get("_type")
    if not raw:
        return None
    types = [t.strip() for t in str(raw).split(",") if t.strip()]
    for t in types:
        if not is_resource_type(t):
            raise outcomes.bad_request(f"Unknown resource type '{t}' in _type", "_type", "GW-1330")
    return types


def _since(params: dict[str, Any]) -> int | None:
    raw = params.get("_since")
    return date_range(str(raw), "_since")[0] if raw else None


def _care_period(params: dict[str, Any]) -> tuple[int, int] | None:
    """start/end: care dates (R4 Patient-everything), each end inclusive at its precision; no
    start means everything up to end, and no end everything from start."""
    start, end = params.get("start"), params.get("end")
    if not start and not end:
        return None
    low = date_range(str(start), "start")[0] if start else -MAX_BIGINT
    high = date_range(str(end), "end")[1] if end else MAX_BIGINT
    if low > high:
        raise outcomes.bad_request(f"start {start} is after end {end}", "start", "GW-1332")
    return low, high


def _count(call: Call, params: dict[str, Any]) -> int:
    raw = str(params.get("_count") or call.core.settings.default_page_size)
    if not is_uint(raw):
        raise outcomes.bad_request(f"Invalid _count '{raw}'", "_count", "GW-1331")
    return min(int(raw), call.core.settings.max_page_size)


async def everything(call: Call) -> FhirResponse:
    params = operation_params(call.req)
    patient_ids: PatientIds = None
    if call.res_id is not None:
        current = await call.repo.read("Patient", call.res_id)
        if current is None:
            raise outcomes.not_found("Patient", call.res_id)
        if current.deleted:
            raise outcomes.gone("Patient", call.res_id, current.version)
        patient_ids = [call.res_id]
    else:
        # Every Patient the client may see (everything, when nothing is restricted).
        seen = call.repo.seen("Patient", resources.c.res_type, resources.c.res_id)
        if seen:
            patient_ids = select(resources.c.res_id).where(
                resources.c.res_type == "Patient", resources.c.deleted.is_(False), *seen
            )
    keys = everything_keys(patient_ids)
    sort = [(keys.c.res_type, False), (keys.c.res_id, False)]
    where: list[Any] = []
    types = _types(params)
    if types:
        where.append(keys.c.res_type.in_(types))
    since = _since(params)
    if since is not None:
        where.append(resources.c.last_updated >= since)
    care = _care_period(params)
    if care is not None:
        where.append(in_care_period(keys, *care))
    count = _count(call, params)
    conds = list(where)
    cursor = params.get("_cursor")
    direction = None
    if cursor:
        direction, values = decode_cursor(str(cursor), sort)
        conds.append(beyond(sort, values, before=direction == "b"))
    backwards = direction == "b"
    page = call.repo.search_keys(keys, conds, order_by(sort, backwards), count + 1)
    if cursor or call.repo.conn is not None:
        found, counted = await page, None
    else:  # a first page: count on another connection meanwhile
        found, counted = await asyncio.gather(page, call.repo.count_keys(keys, where))
    rows = [(st, [st.res_type, st.res_id]) for st in found]
    more = len(rows) > count
    rows = rows[:count]
    if backwards:
        rows.reverse()
    total = len(rows) if not cursor and not more else counted
    return FhirResponse(200, _bundle(call, rows, total, more, cursor, backwards))


def _bundle(
    call: Call, rows: list[Any], total: int | None, more: bool, cursor: Any, backwards: bool
) -> bytes:
    req = call.req
    base = f"{req.base_url}/{req.path}"
    keep = [(k, v) for k, v in req.query if k != "_cursor"]
    links = [("self", f"{base}?{urlencode(req.query)}" if req.query else base)]
    if rows and (more or backwards):
        links.append(("next", f"{base}?{urlencode([*keep, ('_cursor', _cur('a', rows[-1]))])}"))
    if rows and ((cursor and not backwards) or (backwards and more)):
        prev = _cur("b", rows[0])
        links.append(("previous", f"{base}?{urlencode([*keep, ('_cursor', prev)])}"))
    entries = [
        Entry({"fullUrl": f"{req.base_url}/{st.ref}", "search": {"mode": "match"}}, st.content)
        for st, _ in rows
    ]
    return assemble("searchset", entries, total=total, links=links)


def _cur(direction: str, row: Any) -> str:
    return encode_cursor(direction, list(row[1]))


EVERYTHING = Operation(
    "everything",
    everything,
    frozenset({"instance", "type"}),
    frozenset({"Patient"}),
    definition=DEFINITION,
)
