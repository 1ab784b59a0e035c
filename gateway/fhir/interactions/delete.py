"""delete: DELETE /Type/id and conditional DELETE /Type?query (single match, else 412)."""

from __future__ import annotations

from gateway.fhir.interactions._conditional import condition, single_match
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import info_outcome, parse_if_match, prefer_return
from gateway.fhir.router import Call
from gateway.store.model import Stored, Write


def _deleted_response(req: FhirRequest, stored: Stored | None, what: str) -> FhirResponse:
    headers = {"ETag": stored.etag} if stored is not None else {}
    if prefer_return(req) == "OperationOutcome":
        resp = info_outcome(f"Deleted {what}" if stored else f"Nothing to delete at {what}")
        resp.headers.update(headers)
        return resp
    return FhirResponse(204, None, headers)


async def delete(call: Call) -> FhirResponse:
    assert call.res_type and call.res_id
    expected = parse_if_match(call.req.header("if-match"))
    [stored] = await call.repo.apply(
        [Write(call.res_type, call.res_id, None, "DELETE", expected_version=expected)]
    )
    return _deleted_response(call.req, stored, f"{call.res_type}/{call.res_id}")


async def conditional_delete(call: Call) -> FhirResponse:
    assert call.res_type
    query = condition(call, "delete")
    async with call.repo.transaction() as tx:
        match = await single_match(call, tx, query, "delete")
        if match is None:
            return _deleted_response(call.req, None, f"{call.res_type}?{query}")
        [stored] = await tx.apply([Write(call.res_type, match.res_id, None, "DELETE")])
    return _deleted_response(call.req, stored, match.ref)
