"""read and vread, with If-None-Match / If-Modified-Since (304)."""

from __future__ import annotations

from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import read_response, tags_match
from gateway.fhir.router import Call
from gateway.search.subset import subset
from gateway.store.model import Stored
from gateway.vocab import clock, outcomes
from gateway.vocab.params import MAX_BIGINT, is_uint


def _not_modified(req: FhirRequest, stored: Stored) -> bool:
    inm = req.header("if-none-match")
    if inm is not None:
        return tags_match(inm, stored.version)
    ims = req.header("if-modified-since")
    if ims is not None:
        since = clock.parse_http_date(ims)
        # HTTP dates have whole seconds: compare at that precision.
        return since is not None and stored.last_updated // 1_000_000 <= since // 1_000_000
    return False


def _subset_params(req: FhirRequest) -> tuple[str | None, list[str] | None]:
    """`_summary` (true|text|data|false) and `_elements` on a read (R4 search.html §summary:
    "The _summary parameter ... can be used with read as well as search")."""
    summary = req.param("_summary")
    if summary not in (None, "true", "text", "data", "false"):
        raise outcomes.bad_request(
            f"Invalid _summary '{summary}' for a read: expected true, text, data or false",
            "_summary",
            "GW-1303",
        )
    raw = req.param("_elements")
    elements = [e.strip() for e in raw.split(",") if e.strip()] if raw is not None else None
    return (None if summary == "false" else summary), elements


def _respond(req: FhirRequest, stored: Stored) -> FhirResponse:
    summary, elements = _subset_params(req)
    resp = read_response(stored)
    if _not_modified(req, stored):
        return FhirResponse(304, None, resp.headers)
    if summary is None and elements is None:
        return resp
    return FhirResponse(200, subset(stored.content, summary, elements), resp.headers)


async def read(call: Call) -> FhirResponse:
    assert call.res_type and call.res_id
    stored = await call.repo.read(call.res_type, call.res_id)
    if stored is None:
        raise outcomes.not_found(call.res_type, call.res_id)
    if stored.deleted:
        raise outcomes.gone(call.res_type, call.res_id, stored.version)
    return _respond(call.req, stored)


async def vread(call: Call) -> FhirResponse:
    assert call.res_type and call.res_id and call.version
    if not is_uint(call.version) or int(call.version) > MAX_BIGINT:
        raise outcomes.not_found(call.res_type, call.res_id, call.version)
    stored = await call.repo.vread(call.res_type, call.res_id, int(call.version))
    if stored is None:
        raise outcomes.not_found(call.res_type, call.res_id, call.version)
    if stored.deleted:
        raise outcomes.gone(call.res_type, call.res_id, stored.version)
    return _respond(call.req, stored)
