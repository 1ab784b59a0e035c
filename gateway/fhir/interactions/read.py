"""read and vread, with If-None-Match / If-Modified-Since (304)."""

from __future__ import annotations

from gateway.fhir import outcomes
from gateway.fhir.params import MAX_BIGINT
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import parse_etag, read_response
from gateway.fhir.router import Call
from gateway.store import clock
from gateway.store.model import Stored


def _not_modified(req: FhirRequest, stored: Stored) -> bool:
    inm = req.header("if-none-match")
    if inm is not None:
        return inm.strip() == "*" or parse_etag(inm) == stored.version
    ims = req.header("if-modified-since")
    if ims is not None:
        since = clock.parse_http_date(ims)
        # HTTP dates have whole seconds: compare at that precision.
        return since is not None and stored.last_updated // 1_000_000 <= since // 1_000_000
    return False


def _respond(req: FhirRequest, stored: Stored) -> FhirResponse:
    if _not_modified(req, stored):
        resp = read_response(stored)
        return FhirResponse(304, None, resp.headers)
    return read_response(stored)


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
    if not call.version.isdigit() or int(call.version) > MAX_BIGINT:
        raise outcomes.not_found(call.res_type, call.res_id, call.version)
    stored = await call.repo.vread(call.res_type, call.res_id, int(call.version))
    if stored is None:
        raise outcomes.not_found(call.res_type, call.res_id, call.version)
    if stored.deleted:
        raise outcomes.gone(call.res_type, call.res_id, stored.version)
    return _respond(call.req, stored)
