"""history: instance, type and system level, with _since, _at, _count and keyset paging."""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.params import parse_count, parse_instant, parse_int
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import REASONS
from gateway.fhir.router import Call
from gateway.store.model import Stored


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


async def history(call: Call) -> FhirResponse:
    req = call.req
    settings = call.core.settings
    count = parse_count(req.param("_count"), settings.default_page_size, settings.max_page_size)
    since = parse_instant(v, "_since") if (v := req.param("_since")) else None
    at = parse_instant(v, "_at") if (v := req.param("_at")) else None
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
    total = None
    if cursor is None and at is None:
        total = await call.repo.count_history(call.res_type, call.res_id, since)
    entries = [_entry(req.base_url, st) for _, st in page.entries]
    return FhirResponse(200, assemble("history", entries, total=total, links=links))
