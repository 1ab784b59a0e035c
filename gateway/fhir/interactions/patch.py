"""patch: PATCH /Type/id (and conditional PATCH /Type?query) with JSON Patch (RFC 6902)."""

from __future__ import annotations

import base64
from typing import Any

import jsonpatch

from gateway.fhir.interactions._conditional import condition, single_match
from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import parse_if_match, write_response
from gateway.fhir.router import Call
from gateway.store.model import Stored, Write
from gateway.vocab import json_io, outcomes


def _operations(call: Call) -> list[dict[str, Any]]:
    doc = call.req.json_body if call.req.json_body is not None else parse_json(call.req.body)
    if isinstance(doc, dict) and doc.get("resourceType") == "Binary":
        doc = _binary_patch(doc, call.req.where or "Binary")
    if not isinstance(doc, list):
        raise outcomes.bad_request(
            "A JSON Patch body must be an array of operations (application/json-patch+json)",
            gw="GW-1020",
        )
    return doc


def _binary_patch(binary: dict[str, Any], where: str) -> Any:
    """A JSON Patch carried in a transaction entry as a Binary (R4 http.html#patch: the entry
    resource must be a resource, so the patch document travels base64-encoded)."""
    if binary.get("contentType") != "application/json-patch+json":
        raise outcomes.bad_request(
            "A PATCH entry's Binary must have contentType application/json-patch+json",
            f"{where}.contentType",
            "GW-1027",
        )
    try:
        raw = base64.b64decode(binary.get("data") or "", validate=True)
    except ValueError:
        raise outcomes.bad_request(
            "Binary.data is not base64-encoded JSON", f"{where}.data", "GW-1027"
        ) from None
    return parse_json(raw)  # as a PATCH body: strict, exact decimals, no repeated keys


def _apply_patch(call: Call, stored: Stored, ops: list[dict[str, Any]]) -> dict[str, Any]:
    current = json_io.loads_exact(stored.content)
    try:
        patched = jsonpatch.apply_patch(current, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise outcomes.error(422, "processing", "GW-1021", f"JSON Patch failed: {exc}") from None
    if not isinstance(patched, dict):
        raise outcomes.error(422, "processing", "GW-1022", "JSON Patch did not yield a resource")
    if patched.get("id") != stored.res_id or patched.get("resourceType") != stored.res_type:
        raise outcomes.error(
            422, "processing", "GW-1023", "JSON Patch must not change resourceType or id"
        )
    call.core.write_check.check(patched, stored.res_type)
    return patched


async def _patch(call: Call, tx, stored: Stored | None, what: str) -> FhirResponse:  # type: ignore[no-untyped-def]
    if stored is None:
        raise outcomes.error(404, "not-found", "GW-1003", f"Resource {what} is not known")
    if stored.deleted:
        raise outcomes.gone(stored.res_type, stored.res_id, stored.version)
    expected = parse_if_match(call.req.header("if-match"))
    if expected not in (None, "*") and expected != stored.version:
        raise outcomes.precondition_failed(
            f"If-Match version {expected} does not match the current version {stored.version}"
        )
    patched = _apply_patch(call, stored, _operations(call))
    # Pin the version we patched: a concurrent write in between is a conflict, not a lost update.
    [new] = await tx.apply(
        [Write(stored.res_type, stored.res_id, patched, "PATCH", expected_version=stored.version)]
    )
    assert new is not None
    return write_response(call.req, new, 200)


async def patch(call: Call) -> FhirResponse:
    assert call.res_type and call.res_id
    async with call.repo.transaction() as tx:
        stored = await tx.read(call.res_type, call.res_id)
        return await _patch(call, tx, stored, f"{call.res_type}/{call.res_id}")


async def conditional_patch(call: Call) -> FhirResponse:
    assert call.res_type
    query = condition(call, "patch")
    async with call.repo.transaction() as tx:
        stored = await single_match(call, tx, query, "patch")
        return await _patch(call, tx, stored, f"{call.res_type}?{query}")
