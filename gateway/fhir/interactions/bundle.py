"""batch and transaction: POST / with a Bundle.

Batch: each entry on its own, failing independently (this module). Transaction: all or
nothing, in one database transaction (gateway.fhir.interactions.transaction).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.fhir.bundle_links import UnresolvedLink, path_to, rewrite_links
from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.interactions.bundle_items import (
    Item,
    check_unique_full_urls,
    envelope,
    error_entry,
    parse_item,
    response_entry,
    sub_request,
    with_outcomes,
)
from gateway.fhir.interactions.transaction import transaction
from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import prefer_return
from gateway.fhir.router import Call
from gateway.store.errors import database_unavailable, unavailable
from gateway.vocab import outcomes
from gateway.vocab.outcomes import OperationOutcomeError

log = logging.getLogger(__name__)


async def bundle(call: Call) -> FhirResponse:
    doc = call.req.json_body if call.req.json_body is not None else parse_json(call.req.body)
    btype, entries = envelope(doc)
    check_unique_full_urls(entries)
    slot = call.req.context.audit
    if slot is not None:  # the request's AuditEvent names the kind of bundle
        slot.interaction = btype
    if btype == "batch":
        return await _batch(call, entries)
    base = call.req.base_url
    return await transaction(call, [parse_item(i, e, base) for i, e in enumerate(entries)])


async def _batch(call: Call, entries: list[Any]) -> FhirResponse:
    include = prefer_return(call.req) == "representation"
    out: list[Entry] = []
    methods: list[str | None] = []
    for i, raw in enumerate(entries):
        methods.append(None)
        try:
            it = parse_item(i, raw, call.req.base_url)
            methods[-1] = it.method
            _independent(it)
            resp = await call.core.router.dispatch(call.core, sub_request(call, it), call.repo)
            out.append(response_entry(resp, include or it.method == "GET"))
        except OperationOutcomeError as err:
            out.append(error_entry(err))
        except Exception as exc:  # noqa: BLE001 - one entry's failure is that entry's, not the batch's
            if unavailable(exc):
                out.append(error_entry(database_unavailable()))
                continue
            log.exception("batch entry %d failed", i)
            out.append(error_entry(outcomes.internal_error()))
    out = with_outcomes(out, methods, prefer_return(call.req))
    return FhirResponse(200, assemble("batch-response", out))


def _independent(it: Item) -> None:
    """R4 http.html (batch): "there SHALL be no interdependencies between the different
    entries": a `urn:uuid:`/`urn:oid:` reference names another entry (or nothing) and would be
    stored dangling."""
    if it.resource is None or it.method not in ("POST", "PUT"):
        return
    try:
        rewrite_links(it.resource, {}, {}, lambda _ref: False)
    except UnresolvedLink as exc:
        raise outcomes.bad_request(
            f"Reference '{exc.ref}' names another entry: batch entries are independent "
            "(use a transaction)",
            path_to(it.resource, exc.node, it.where) + ".reference",
            "GW-1213",
        ) from None
