"""create: POST /Type, with conditional create (If-None-Exist).

The condition may also come as the query string (`POST /Patient?identifier=…`), the form some
clients use (fhirpy's get_or_create, Aidbox); R4 defines only the header, so a request with
both must say the same thing in each.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import new_id, read_response, resource_body, write_response
from gateway.fhir.router import Call
from gateway.store.model import Write
from gateway.vocab import outcomes


async def create(call: Call) -> FhirResponse:
    assert call.res_type
    resource = resource_body(call.req, call.res_type, call.core.write_check)
    condition = _condition(call)
    async with call.repo.transaction() as tx:
        if condition:
            existing = await call.core.conditional_match(tx, call.res_type, condition, lock=True)
            if len(existing) > 1:
                raise outcomes.multiple_matches(
                    f"If-None-Exist '{condition}' matches {len(existing)} {call.res_type} resources"
                )
            if existing:
                resp = read_response(existing[0])
                resp.headers["Location"] = (
                    f"{call.req.base_url}/{call.res_type}/{existing[0].res_id}"
                    f"/_history/{existing[0].version}"
                )
                return resp
        # The server assigns the id; any id in the body is ignored (R4 3.1.0.8.1).
        [stored] = await tx.apply(
            [Write(call.res_type, new_id(), resource, "POST", create_only=True)]
        )
    assert stored is not None
    return write_response(call.req, stored, 201)


_NOT_CONDITIONS = ("_format", "_pretty")


def _condition(call: Call) -> str | None:
    header = call.req.header("if-none-exist")
    query = [(k, v) for k, v in call.req.query if k not in _NOT_CONDITIONS]
    if not query:
        return header
    named = parse_qsl(header.split("?", 1)[-1], keep_blank_values=True) if header else None
    if named is not None and sorted(named) != sorted(query):
        raise outcomes.bad_request(
            "A create names two different conditions: If-None-Exist and the query string",
            "If-None-Exist",
            gw="GW-1034",
        )
    return urlencode(query)
