"""search: GET /Type?…, POST /Type/_search (form body), GET /?_type=… (system level)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from gateway.fhir import outcomes
from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.outcomes import outcome_json
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.router import Call


def _lenient(req: FhirRequest) -> bool:
    return "handling=lenient" in (req.header("prefer") or "").replace(" ", "")


def _form_query(req: FhirRequest) -> list[tuple[str, str]]:
    ctype = (req.header("content-type") or "").split(";")[0].strip()
    if req.body and ctype != "application/x-www-form-urlencoded":
        raise outcomes.unsupported_media_type(ctype)
    body = (req.body or b"").decode("utf-8")
    return req.query + parse_qsl(body, keep_blank_values=True)


async def _search(
    call: Call, res_type: str, query: list[tuple[str, str]], path: str
) -> FhirResponse:
    req = call.req
    sr = call.core.parse_search(res_type, query, lenient=_lenient(req))
    stored, total = await call.core.search(call.repo, sr)
    base = f"{req.base_url}/{path}"
    keep = [(k, v) for k, v in query if k != "_offset"]
    links = [("self", f"{base}?{urlencode(query)}" if query else base)]
    if len(stored) > sr.count:
        stored = stored[: sr.count]
        links.append(("next", f"{base}?{urlencode([*keep, ('_offset', sr.offset + sr.count)])}"))
    if sr.offset > 0:
        prev = max(0, sr.offset - sr.count)
        links.append(("previous", f"{base}?{urlencode([*keep, ('_offset', prev)])}"))
    entries = [
        Entry({"fullUrl": f"{req.base_url}/{st.ref}", "search": {"mode": "match"}}, st.content)
        for st in stored
    ]
    if sr.warnings:
        entries.append(Entry({"search": {"mode": "outcome"}}, outcome_json(sr.warnings)))
    if sr.summary == "count":
        entries = []
    return FhirResponse(200, assemble("searchset", entries, total=total, links=links))


async def search_type(call: Call) -> FhirResponse:
    assert call.res_type
    query = _form_query(call.req) if call.req.method == "POST" else call.req.query
    return await _search(call, call.res_type, query, call.res_type)


async def search_system(call: Call) -> FhirResponse:
    types = [t for v in call.req.params("_type") for t in v.split(",") if t]
    if len(types) != 1:
        raise outcomes.bad_request(
            "System-level search needs exactly one type in _type for now", "_type", "GW-1304"
        )
    query = [(k, v) for k, v in call.req.query if k != "_type"]
    return await _search(call, types[0], query, "")
