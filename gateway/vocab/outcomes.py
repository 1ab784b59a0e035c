"""OperationOutcome errors: one exception type, constructors with stable codes, status derived.

Every failure a client can cause is raised as `OperationOutcomeError`; the HTTP edge turns it
into an OperationOutcome body with the status derived here. Codes (`GW-xxxx`) are stable so
users can search for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# issue.code (http://hl7.org/fhir/issue-type) → HTTP status, used when no status is given.
_STATUS_BY_ISSUE_CODE = {
    "invalid": 400,
    "structure": 400,
    "required": 400,
    "value": 400,
    "invariant": 422,
    "processing": 422,
    "not-found": 404,
    "deleted": 410,
    "conflict": 409,
    "not-supported": 400,
    "too-long": 413,
    "security": 403,
    "login": 401,
    "forbidden": 403,
    "duplicate": 412,
    "multiple-matches": 412,
    "exception": 500,
    "informational": 200,
}


@dataclass(frozen=True, slots=True)
class Issue:
    code: str  # FHIR issue-type code
    diagnostics: str
    gw_code: str = "GW-0000"
    severity: str = "error"
    expression: tuple[str, ...] = ()
    # An issue already rendered elsewhere (the profile validator's bilingual issues).
    rendered: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        if self.rendered is not None:
            return self.rendered
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "details": {
                "coding": [{"system": "urn:fhir-gateway:message-codes", "code": self.gw_code}],
                "text": self.diagnostics,
            },
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def outcome_json(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass
class OperationOutcomeError(Exception):
    issues: list[Issue]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = _STATUS_BY_ISSUE_CODE.get(self.issues[0].code, 400)
        super().__init__(self.issues[0].diagnostics)

    def outcome(self) -> dict[str, Any]:
        return outcome_json(self.issues)


def error(
    status: int, code: str, gw_code: str, text: str, expression: str | None = None
) -> OperationOutcomeError:
    expr = (expression,) if expression else ()
    return OperationOutcomeError([Issue(code, text, gw_code, expression=expr)], status)


# Constructors. Keep codes unique: grep for the code before adding one.
def bad_request(text: str, expression: str | None = None, gw: str = "GW-1000"):
    return error(400, "invalid", gw, text, expression)


def malformed_json(text: str):
    return error(400, "structure", "GW-1001", f"Malformed JSON: {text}")


def unknown_type(rtype: str):
    return error(404, "not-supported", "GW-1002", f"Unknown resource type '{rtype}'")


def not_found(rtype: str, rid: str, version: str | None = None):
    what = f"{rtype}/{rid}" + (f"/_history/{version}" if version else "")
    return error(404, "not-found", "GW-1003", f"Resource {what} is not known")


def gone(rtype: str, rid: str, version: int | None = None):
    err = error(410, "deleted", "GW-1004", f"Resource {rtype}/{rid} has been deleted")
    if version is not None:
        err.headers["ETag"] = f'W/"{version}"'
    return err


def id_mismatch(text: str, expression: str | None = None):
    return error(400, "invalid", "GW-1005", text, expression)


def unsupported_media_type(content_type: str):
    return error(
        415,
        "not-supported",
        "GW-1006",
        f"Unsupported content type '{content_type}': use application/fhir+json",
    )


def body_too_large(limit: int):
    return error(413, "too-long", "GW-1007", f"Request body exceeds the limit of {limit} bytes")


def version_conflict(text: str):
    return error(409, "conflict", "GW-1008", text)


def precondition_failed(text: str, gw: str = "GW-1009"):
    return error(412, "conflict", gw, text)


def multiple_matches(text: str):
    return error(412, "multiple-matches", "GW-1010", text)


def method_not_allowed(method: str, path: str):
    return error(405, "not-supported", "GW-1011", f"{method} is not supported on '{path}'")


def not_acceptable(fmt: str):
    return error(406, "not-supported", "GW-1012", f"Format '{fmt}' is not supported: use JSON")


def unknown_path(path: str):
    return error(404, "not-found", "GW-1013", f"Unknown path '{path}'")


def forbidden(text: str):
    """The client may not do this (its scopes or its role's access policy): 403."""
    return error(403, "forbidden", "GW-1042", text)


def unauthorized(text: str, token_sent: bool = True):
    """No valid access token: 401, with the challenge RFC 6750 §3 asks for (an error code only
    when a token was sent)."""
    err = error(401, "login", "GW-1040", text)
    challenge = 'Bearer realm="fhir"'
    err.headers["WWW-Authenticate"] = (
        challenge + ', error="invalid_token"' if token_sent else challenge
    )
    return err


def unavailable(text: str, retry_after: int, gw: str = "GW-1045"):
    """Not now (the database is down, the gateway is saturated): 503 with Retry-After."""
    err = error(503, "transient", gw, text)
    err.headers["Retry-After"] = str(retry_after)
    return err


def invalid_content(issues: list[Issue], status: int = 400):
    return OperationOutcomeError(issues, status)


def internal_error(text: str = "Internal server error"):
    return error(500, "exception", "GW-1999", text)


def from_rendered(outcome: dict[str, Any], status: int) -> OperationOutcomeError:
    """An error whose OperationOutcome was rendered by another module (validation)."""
    issues = [
        Issue(
            i.get("code", "processing"),
            i.get("diagnostics", ""),
            ((i.get("details") or {}).get("coding") or [{}])[0].get("code", "GW-0000"),
            i.get("severity", "error"),
            tuple(i.get("expression") or ()),
            rendered=i,
        )
        for i in outcome.get("issue", [])
    ]
    return OperationOutcomeError(issues, status)
