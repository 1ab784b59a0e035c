"""Building FhirResponses: resource bodies from stored bytes, headers, Prefer handling."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.fhir import outcomes
from gateway.fhir.outcomes import Issue, outcome_json
from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.write_check import WriteCheck
from gateway.store.model import Stored

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
}


def new_id() -> str:
    return str(uuid.uuid4())


def prefer_return(req: FhirRequest) -> str:
    """'minimal' | 'representation' | 'OperationOutcome' from the Prefer header."""
    prefer = req.header("prefer") or ""
    for part in prefer.split(","):
        for item in part.split(";"):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == "return":
                v = value.strip().strip('"')
                if v in ("minimal", "representation", "OperationOutcome"):
                    return v
    return "representation"


def version_headers(stored: Stored) -> dict[str, str]:
    return {"ETag": stored.etag, "Last-Modified": stored.last_modified}


def location(req: FhirRequest, stored: Stored) -> str:
    return f"{req.base_url}/{stored.res_type}/{stored.res_id}/_history/{stored.version}"


def write_response(
    req: FhirRequest, stored: Stored, status: int, message: str | None = None
) -> FhirResponse:
    """Response to create/update/patch, honouring Prefer: return=…"""
    headers = version_headers(stored)
    if status == 201 or req.in_bundle:
        headers["Location"] = location(req, stored)
    mode = prefer_return(req)
    body: bytes | dict[str, Any] | None
    if mode == "minimal":
        body = None
    elif mode == "OperationOutcome":
        text = message or f"{stored.res_type}/{stored.res_id} version {stored.version} stored"
        body = outcome_json([Issue("informational", text, "GW-0001", severity="information")])
    else:
        body = stored.content
    return FhirResponse(status, body, headers)


def read_response(stored: Stored) -> FhirResponse:
    return FhirResponse(200, stored.content, version_headers(stored))


def info_outcome(text: str, status: int = 200, gw: str = "GW-0002") -> FhirResponse:
    return FhirResponse(
        status, outcome_json([Issue("informational", text, gw, severity="information")])
    )


def resource_body(req: FhirRequest, expected_type: str | None, check: WriteCheck) -> dict[str, Any]:
    """The request's resource: parsed (unless a bundle already did), structurally valid and
    valid against the profiles that apply."""
    doc = req.json_body if req.json_body is not None else parse_json(req.body)
    check.check(doc, expected_type, req.where)
    return doc


def parse_etag(value: str | None) -> int | None:
    """W/"3" or "3" → 3; None when absent. A malformed ETag is a 400."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not v.isdigit():
        raise outcomes.bad_request(
            f"Malformed ETag '{value}': expected W/\"<version>\"", gw="GW-1018"
        )
    return int(v)
