"""Building FhirResponses: resource bodies from stored bytes, headers, Prefer handling."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus
from typing import Any, Literal

from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.write_check import WriteCheck
from gateway.store.model import Stored
from gateway.vocab import outcomes
from gateway.vocab.outcomes import Issue, OperationOutcomeError, outcome_json
from gateway.vocab.params import is_uint

# Reason phrases for Bundle.entry.response.status ("404 Not Found").
REASONS = {status.value: status.phrase for status in HTTPStatus}


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


def _malformed_etag(value: str) -> OperationOutcomeError:
    return outcomes.bad_request(
        f"Malformed ETag '{value}': expected W/\"<version>\", a list of them, or *", gw="GW-1018"
    )


def parse_etag(value: str | None) -> int | None:
    """W/"3" or "3" → 3; None when absent. A malformed ETag is a 400.

    The single-version form; If-Match and If-None-Match take "*" and lists too, see
    parse_if_match and tags_match."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not is_uint(v):
        raise _malformed_etag(value)
    return int(v)


# One list element of If-Match / If-None-Match (RFC 9110 §8.8.3): an entity-tag, weak or not,
# whose opaque-tag may hold commas; a bare version (3) is accepted as well, as parse_etag does.
_ETAG = re.compile(r'\s*(?:(?:W/)?"([^"]*)"|([0-9]+))\s*(?:,|$)')


def parse_etags(value: str | None) -> list[int] | Literal["*"] | None:
    """An If-Match / If-None-Match field value (RFC 9110 §13.1.1-2: "*" / #entity-tag): "*",
    the versions the listed tags name, or None when absent. A tag that is no version of ours
    (W/"abc") can never match and is left out; a value that is not a list of tags is a 400."""
    if value is None:
        return None
    if value.strip() == "*":
        return "*"
    versions: list[int] = []
    pos, seen = 0, False
    while pos < len(value):
        if value[pos] in " \t,":  # empty list elements are allowed (RFC 9110 §5.6.1.2)
            pos += 1
            continue
        m = _ETAG.match(value, pos)
        if m is None:
            raise _malformed_etag(value)
        tag = m.group(1) if m.group(1) is not None else m.group(2)
        if is_uint(tag):
            versions.append(int(tag))
        seen = True
        pos = m.end()
    if not seen:
        raise _malformed_etag(value)
    return versions


def tags_match(value: str | None, version: int | None) -> bool:
    """Whether an If-None-Match (or If-Match) value matches the current version (None: there is
    no current representation). Weak comparison, as FHIR's ETags are weak."""
    tags = parse_etags(value)
    if tags is None or version is None:
        return False
    return tags == "*" or version in tags


def parse_if_match(value: str | None) -> int | Literal["*"] | None:
    """If-Match for a write: the one version expected, "*" (some current version must exist),
    or None. A list naming several versions cannot be one precondition of a write: 400."""
    tags = parse_etags(value)
    if tags is None or tags == "*":
        return tags
    if len(set(tags)) != 1:
        raise outcomes.bad_request(
            f"If-Match '{value}' must name exactly one version", gw="GW-1018"
        )
    return tags[0]
