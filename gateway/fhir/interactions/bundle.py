"""batch and transaction: POST / with a Bundle.

Batch: each entry on its own, failing independently (this module). Transaction: all or
nothing, in one database transaction (gateway.fhir.interactions.transaction).
"""

from __future__ import annotations

from typing import Any

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.interactions.bundle_items import (
    envelope,
    error_entry,
    parse_item,
    response_entry,
    sub_request,
)
from gateway.fhir.interactions.transaction import transaction
from gateway.fhir.outcomes import OperationOutcomeError
from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import prefer_return
from gateway.fhir.router import Call


async def bundle(call: Call) -> FhirResponse:
    doc = call.req.json_body if call.req.json_body is not None else parse_json(call.req.body)
    btype, entries = envelope(doc)
    if btype == "batch":
        return await _batch(call, entries)
    return await transaction(call, [parse_item(i, e) for i, e in enumerate(entries)])


async def _batch(call: Call, entries: list[Any]) -> FhirResponse:
    include = prefer_return(call.req) == "representation"
    out: list[Entry] = []
    for i, raw in enumerate(entries):
        try:
            it = parse_item(i, raw)
            resp = await call.core.router.dispatch(call.core, sub_request(call, it), call.repo)
            out.append(response_entry(resp, include or it.method == "GET"))
        except OperationOutcomeError as err:
            out.append(error_entry(err))
    return FhirResponse(200, assemble("batch-response", out))
