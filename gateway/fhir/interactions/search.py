"""search: GET /Type?…, POST /Type/_search (form body), GET /?_type=… (system level)."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.router import Call
from gateway.search.execute import SearchPage
from gateway.search.request import IGNORE_UNKNOWN, LENIENT, STRICT
from gateway.search.subset import subset
from gateway.store.model import Stored
from gateway.vocab import outcomes
from gateway.vocab.outcomes import outcome_json
from gateway.vocab.search_model import SearchRequest

PAGING = ("_cursor", "_offset")


def handling(req: FhirRequest, default: str) -> str:
    """`Prefer: handling=strict|lenient` (R4 search.html), else the server's default: unknown
    parameters ignored (GATEWAY_SEARCH_HANDLING=lenient) or refused (strict)."""
    prefer = (req.header("prefer") or "").replace(" ", "")
    for part in prefer.split(","):
        for pref in part.split(";"):
            if pref in ("handling=strict", "handling=lenient"):
                return STRICT if pref == "handling=strict" else LENIENT
    return STRICT if default == "strict" else IGNORE_UNKNOWN


FORM = "application/x-www-form-urlencoded"


def _form_query(req: FhirRequest) -> list[tuple[str, str]]:
    """POST _search: the URL's parameters and the form body's (R4 search.html "Search via POST").
    A form is the only body there is: any other content type is a 415, even without content
    (answering as if no parameter had been sent would return every resource). No body and no
    content type is an empty form."""
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != FORM and (req.body or ctype):
        raise outcomes.error(
            415,
            "not-supported",
            "GW-1006",
            f"Unsupported content type '{ctype}' for a search: POST _search takes its "
            f"parameters as {FORM}",
        )
    try:
        body = (req.body or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise outcomes.bad_request("The search form body is not UTF-8", gw="GW-1033") from None
    return req.query + parse_qsl(body, keep_blank_values=True)


def links(
    base: str,
    query: list[tuple[str, str]],
    page: SearchPage,
    ignored: Collection[int] = (),
) -> list[tuple[str, str]]:
    """self (the parameters used: lenient handling's ignored ones left out), next, previous."""
    query = [kv for i, kv in enumerate(query) if i not in ignored]
    keep = [(k, v) for k, v in query if k not in PAGING]
    out = [("self", f"{base}?{urlencode(query)}" if query else base)]
    if page.next_cursor:
        out.append(("next", f"{base}?{urlencode([*keep, ('_cursor', page.next_cursor)])}"))
    if page.prev_cursor:
        out.append(("previous", f"{base}?{urlencode([*keep, ('_cursor', page.prev_cursor)])}"))
    return out


def entries(req: FhirRequest, sr: SearchRequest, page: SearchPage) -> list[Entry]:
    def entry(st: Stored, mode: str) -> Entry:
        fields = {"fullUrl": f"{req.base_url}/{st.ref}", "search": {"mode": mode}}
        return Entry(fields, subset(st.content, sr.summary, sr.elements))

    out = [entry(st, "match") for st in page.matches]
    out.extend(entry(st, "include") for st in page.included)
    if sr.warnings:
        out.append(Entry({"search": {"mode": "outcome"}}, outcome_json(sr.warnings)))
    return out


async def _search(
    call: Call,
    res_type: str | None,
    query: list[tuple[str, str]],
    path: str,
    types: list[str] | None = None,
) -> FhirResponse:
    req = call.req
    mode = handling(req, call.core.settings.search_handling)
    sr = call.core.parse_search(res_type, query, handling=mode, types=types)
    page = await call.core.search(call.repo, sr)
    base = f"{req.base_url}/{path}" if path else req.base_url
    body = assemble(
        "searchset",
        [] if sr.summary == "count" else entries(req, sr, page),
        total=page.total,
        links=links(base, query, page, sr.ignored),
    )
    return FhirResponse(200, body)


async def search_type(call: Call) -> FhirResponse:
    assert call.res_type
    query = _form_query(call.req) if call.req.method == "POST" else call.req.query
    return await _search(call, call.res_type, query, call.res_type)


async def search_system(call: Call) -> FhirResponse:
    query = _form_query(call.req) if call.req.method == "POST" else call.req.query
    types = sorted({t for k, v in query if k == "_type" for t in v.split(",") if t})
    for t in types:
        if not is_resource_type(t):
            raise outcomes.bad_request(f"Unknown resource type '{t}' in _type", "_type", "GW-1304")
    if len(types) == 1:
        return await _search(call, types[0], query, "")
    return await _search(call, None, query, "", types)
