"""history: instance, type and system level, with _since, _at, _count and keyset paging."""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import REASONS
from gateway.fhir.router import Call
from gateway.search.query_values import date_range, split_prefix
from gateway.store.model import Stored
from gateway.vocab import outcomes
from gateway.vocab.params import MAX_BIGINT, parse_count, parse_instant, parse_int


def _entry(base: str, st: Stored) -> Entry:
    # The stored method says how each version was made (POST, PUT, PATCH, DELETE).
    url = st.res_type if st.method == "POST" else st.ref
    status = 204 if st.deleted else 201 if st.method == "POST" or st.version == 1 else 200
    return Entry(
        {
            "fullUrl": f"{base}/{st.ref}",
            "request": {"method": st.method, "url": url},
            "response": {
                "status": f"{status} {REASONS[status]}",
                "etag": st.etag,
                "lastModified": st.last_updated_instant,
            },
        },
        None if st.deleted else st.content,
    )


def _at_period(value: str) -> tuple[int, int]:
    """`_at` (a date search value, R4 http.html#history) → the inclusive µs period it names:
    `2024` is the whole year; ge/gt/le/lt open it on one side."""
    prefix, rest = split_prefix(value)
    if prefix not in ("eq", "ge", "gt", "le", "lt"):
        raise outcomes.bad_request(f"Unsupported prefix '{prefix}' for _at", "_at", "GW-1310")
    lo, hi = date_range(rest, "_at")
    return {
        "eq": (lo, hi),
        "ge": (lo, MAX_BIGINT),
        "gt": (hi + 1, MAX_BIGINT),
        "le": (-MAX_BIGINT, hi),
        "lt": (-MAX_BIGINT, lo - 1),
    }[prefix]


async def history(call: Call) -> FhirResponse:
    req = call.req
    settings = call.core.settings
    count = parse_count(req.param("_count"), settings.default_page_size, settings.max_page_size)
    since = parse_instant(v, "_since") if (v := req.param("_since")) else None
    at = _at_period(v) if (v := req.param("_at")) else None
    cursor = parse_int(req.param("_cursor"), "_cursor")
    page = await call.repo.history(
        call.res_type, call.res_id, since=since, at=at, cursor=cursor, count=count
    )
    path = "/".join(p for p in (call.res_type, call.res_id, "_history") if p)
    keep = [(k, v) for k, v in req.query if k not in ("_cursor",)]
    links = [("self", f"{req.base_url}/{path}" + (f"?{urlencode(req.query)}" if req.query else ""))]
    if page.next_cursor is not None:
        links.append(
            ("next", f"{req.base_url}/{path}?{urlencode([*keep, ('_cursor', page.next_cursor)])}")
        )
    if call.res_type and call.res_id and not page.entries and cursor is None:
        if await call.repo.read(call.res_type, call.res_id) is None:  # never existed
            raise outcomes.not_found(call.res_type, call.res_id)
    total = None
    if cursor is None:
        total = await call.repo.count_history(call.res_type, call.res_id, since, at)
    entries = [_entry(req.base_url, st) for _, st in page.entries]
    return FhirResponse(200, assemble("history", entries, total=total, links=links))
