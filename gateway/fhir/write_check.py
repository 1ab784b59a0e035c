"""What every written resource must pass: structure, then the profiles that apply.

Structure (R4B models + JSON types) → 400. Profiles (gateway.validation) → 422 with every
issue; warnings never block. A profile applies when the resource claims one the gateway knows
(meta.profile) or, in `default` mode, when it is one of our domain types (CN Patient, contract
CarePlan, …). A claimed profile the gateway does not know (US Core on foreign data) is only a
warning, unless strict mode makes it an error. Resources to which no profile applies are
checked against the R4 core definitions (required bindings, invariants, reference target
types: what R4 calls conformant content), unless `core` is off; `off` mode is structure only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.fhir import outcomes
from gateway.fhir.outcomes import Issue, OperationOutcomeError
from gateway.fhir.parse import validate_resource

MODES = ("default", "claimed", "off")


class WriteCheck:
    def __init__(
        self,
        mode: str = "default",
        strict: bool = False,
        profiles_dir: Path | None = None,
        core: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"profile validation mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.strict = strict
        self.core = core
        from gateway.validation import DEFAULT_PROFILES, ProfileRegistry, Validator

        # Built whatever the mode: $validate and the terminology operations use it too.
        registry = ProfileRegistry.load(profiles_dir)
        defaults = DEFAULT_PROFILES if mode != "claimed" else ()
        self.validator = Validator(registry, default_profiles=defaults, strict=strict)

    @property
    def config(self) -> tuple[str, bool, Path | None, bool]:
        """What a worker process needs to build the same check."""
        return self.mode, self.strict, self.validator.registry.profiles_dir, self.core

    def _applies(self, resource: dict[str, Any]) -> bool:
        v = self.validator
        if self.mode == "off":
            return False
        if self.core or v.profiles_for(resource):
            return True
        claims = (resource.get("meta") or {}).get("profile") or []
        known = v.registry.structure_definition
        return any(isinstance(c, str) and (self.strict or known(c)) for c in claims)

    def check(self, resource: Any, expected: str | None = None, where: str = "") -> None:
        try:
            self._check(resource, expected, where)
        except RecursionError:
            raise outcomes.bad_request(
                "The resource is nested too deeply", where or None, gw="GW-1103"
            ) from None

    def _check(self, resource: Any, expected: str | None, where: str) -> None:
        validate_resource(resource, expected, where)
        if not self._applies(resource):
            return
        from gateway.validation import has_errors

        issues = self.validator.validate(resource)
        if has_errors(issues):
            raise OperationOutcomeError(
                [_issue(i, resource["resourceType"], where) for i in issues], 422
            )


def _issue(vi: Any, rtype: str, where: str) -> Issue:
    """A profile-validator issue, its location re-rooted under a bundle entry if need be."""
    rendered = vi.to_json()
    expression = vi.expression
    if where and expression and (expression == rtype or expression.startswith(rtype + ".")):
        expression = where + expression[len(rtype) :]
        rendered = {**rendered, "expression": [expression]}
    return Issue(
        vi.issue_type,
        f"{vi.text_en} / {vi.text_zh}",
        vi.message_id,
        vi.severity,
        (expression,) if expression else (),
        rendered,
    )
