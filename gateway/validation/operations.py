"""$validate and write-time validation, as plain functions the HTTP layer calls.

- `run_validate(validator, body, …)` implements `[type]/$validate` and `[type]/[id]/$validate`:
  the body is a Parameters resource (`resource`, `mode`, `profile`) or the resource itself;
  the answer is always an OperationOutcome (HTTP 200), errors included, as the spec says.
- `check_write(validator, resource)` is for create/update/transaction entries: errors mean
  422 with every issue; warnings never block. `raise_for_write` raises `ValidationFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.validation.issues import Issue, has_errors, operation_outcome
from gateway.validation.validator import Validator

MODES = frozenset({"create", "update", "delete", "profile"})


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    resource: Any
    profiles: tuple[str, ...] = ()
    mode: str | None = None


class ValidationFailed(Exception):
    """The resource has errors: HTTP 422 with every issue (errors and warnings)."""

    status = 422

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(next((i.text_en for i in issues if i.is_error), "invalid resource"))
        self.issues = issues
        self.headers: dict[str, str] = {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


@dataclass(slots=True)
class WriteCheck:
    ok: bool
    issues: list[Issue] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 200 if self.ok else 422

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def parse_validate_body(
    body: Any,
    resource_type: str | None = None,
    profile: str | None = None,
    mode: str | None = None,
) -> ValidateRequest | Issue:
    """The $validate inputs from a Parameters body or a bare resource (plus query values)."""
    profiles = [profile] if profile else []
    resource = body
    if _is_operation_input(body, mode):
        resource = None
        for p in body.get("parameter", []) if isinstance(body.get("parameter"), list) else []:
            name = p.get("name") if isinstance(p, dict) else None
            if name == "resource":
                resource = p.get("resource")
            elif name == "mode":
                value = p.get("valueCode") or p.get("valueString")
                if value is not None and not isinstance(value, str):
                    return Issue.make("VAL-1083", "Parameters.parameter", detail="mode is a code")
                mode = value or mode
            elif name == "profile":
                value = p.get("valueUri") or p.get("valueCanonical") or p.get("valueString")
                if value is not None and not isinstance(value, str):
                    return Issue.make("VAL-1083", "Parameters.parameter", detail="profile is a uri")
                if value:
                    profiles.append(value)
        if resource is None and mode != "delete":
            return Issue.make("VAL-1083", "Parameters.parameter", detail="no 'resource' parameter")
    if mode is not None and mode not in MODES:
        return Issue.make("VAL-1083", "Parameters.parameter", detail=f"unknown mode '{mode}'")
    if (
        resource_type
        and isinstance(resource, dict)
        and resource.get("resourceType")
        not in (
            None,
            resource_type,
        )
    ):
        detail = f"resource type {resource.get('resourceType')} does not match {resource_type}"
        return Issue.make("VAL-1083", "resourceType", detail=detail)
    return ValidateRequest(resource, tuple(profiles), None if mode == "profile" else mode)


def _is_operation_input(body: Any, mode: str | None) -> bool:
    """A Parameters body is the operation's input when it carries a `resource` parameter (or
    asks for mode delete, which needs none); any other Parameters is itself the resource to
    validate (POST Parameters/$validate with a Parameters resource)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return False
    params = body.get("parameter")
    named = (
        {p.get("name"): p for p in params if isinstance(p, dict)}
        if isinstance(params, list)
        else {}
    )
    if "resource" in named:
        return True
    wanted = named.get("mode", {})
    return mode == "delete" or wanted.get("valueCode") == "delete"


def run_validate(
    validator: Validator,
    body: Any,
    resource_type: str | None = None,
    profile: str | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """$validate: an OperationOutcome listing every issue (an all-clear one when none)."""
    request = parse_validate_body(body, resource_type, profile, mode)
    if isinstance(request, Issue):
        return operation_outcome([request])
    issues = validator.validate(request.resource, list(request.profiles), request.mode)
    return operation_outcome(issues)


def check_write(validator: Validator, resource: dict[str, Any], update: bool = False) -> WriteCheck:
    """Write-time validation: claimed profiles, default profiles, core definitions."""
    issues = validator.validate(resource, mode="update" if update else "create")
    return WriteCheck(not has_errors(issues), issues)


def raise_for_write(
    validator: Validator, resource: dict[str, Any], update: bool = False
) -> list[Issue]:
    """Raise ValidationFailed (422) on errors; otherwise return the warnings to report."""
    result = check_write(validator, resource, update)
    if not result.ok:
        raise ValidationFailed(result.issues)
    return result.issues
