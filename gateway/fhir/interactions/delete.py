"""delete: DELETE /Type/id and conditional DELETE /Type?query (single match, else 412)."""

from __future__ import annotations

from gateway.fhir import outcomes
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import info_outcome, parse_etag, prefer_return
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
    expected = parse_etag(call.req.header("if-match"))
    [stored] = await call.repo.apply(
        [Write(call.res_type, call.res_id, None, "DELETE", expected_version=expected)]
    )
    return _deleted_response(call.req, stored, f"{call.res_type}/{call.res_id}")


async def conditional_delete(call: Call) -> FhirResponse:
    assert call.res_type
    query = call.req.query_string()
    if not query:
        raise outcomes.bad_request("Conditional delete needs search parameters", gw="GW-1019")
    async with call.repo.transaction() as tx:
        matches = await call.core.conditional_match(tx, call.res_type, query, lock=True)
        if len(matches) > 1:
            raise outcomes.multiple_matches(
                f"Conditional delete '{query}' matches {len(matches)} resources"
            )
        if not matches:
            return _deleted_response(call.req, None, f"{call.res_type}?{query}")
        [stored] = await tx.apply([Write(call.res_type, matches[0].res_id, None, "DELETE")])
    return _deleted_response(call.req, stored, f"{call.res_type}/{matches[0].res_id}")
