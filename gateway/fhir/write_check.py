"""What every written resource must pass: the R4 definitions, then the profiles that apply.

One walk of the definitions (gateway.validation) judges a resource: errors against R4 itself
(JSON form, unknown elements, primitive formats, the base cardinalities) answer 400; errors
against the core rules (required bindings, invariants, reference targets), the profiles that
apply or the national identifier checks answer 422, with every issue; warnings never block.

Which profiles apply (GATEWAY_PROFILE_VALIDATION):
- `default`: the profiles a resource claims (meta.profile) that the gateway knows, and our
  domain profiles for resources carrying our marks (contract CarePlan, team CareTeam, referral
  ServiceRequest and Task, consent, household, packages, the mutual-recognition mark);
- `cn`: as default, and every Patient, Organization, Practitioner and PractitionerRole is held
  to the CN profiles (a region whose data is all Chinese);
- `claimed`: only the claimed profiles;
- `off`: none (structure and core rules only).
A claimed profile the gateway does not know is a warning, unless strict mode makes it an error;
so is an extension defined nowhere the gateway knows (outside our namespace and the R4 core
one, where it is always an error), unless GATEWAY_UNKNOWN_EXTENSIONS=error. HTML tags in
string and markdown values are reported, as errors with GATEWAY_SECURITY_CHECKS=true.
Where no profile applies, the R4 core definitions apply, structure only when `core` is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.fhir.parse import check_envelope
from gateway.vocab import metrics, outcomes
from gateway.vocab.outcomes import Issue, OperationOutcomeError

MODES = ("default", "cn", "claimed", "off")


class WriteCheck:
    def __init__(
        self,
        mode: str = "default",
        strict: bool = False,
        profiles_dir: Path | None = None,
        core: bool = True,
        unknown_extensions: str = "warning",
        security_checks: bool = False,
    ):
        if mode not in MODES:
            raise ValueError(f"profile validation mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.strict = strict
        self.core = core
        from gateway.validation import CN_PROFILES, DEFAULT_PROFILES, ProfileRegistry, Validator

        # Built whatever the mode: $validate and the terminology operations use it too.
        registry = ProfileRegistry.load(profiles_dir)
        defaults = {"default": DEFAULT_PROFILES, "cn": CN_PROFILES}.get(mode, ())
        self.validator = Validator(
            registry,
            default_profiles=defaults,
            strict=strict,
            unknown_extensions=unknown_extensions,
            security_checks=security_checks,
        )

    @property
    def config(self) -> dict[str, Any]:
        """What a worker process needs to build the same check: WriteCheck(**config)."""
        v = self.validator
        return {
            "mode": self.mode,
            "strict": self.strict,
            "profiles_dir": v.registry.profiles_dir,
            "core": self.core,
            "unknown_extensions": v.unknown_extensions,
            "security_checks": v.security_checks,
        }

    def check(self, resource: Any, expected: str | None = None, where: str = "") -> None:
        try:
            self._check(resource, expected, where)
        except RecursionError:
            raise outcomes.bad_request(
                "The resource is nested too deeply", where or None, gw="GW-1103"
            ) from None

    def _check(self, resource: Any, expected: str | None, where: str) -> None:
        rtype = check_envelope(resource, expected, where)
        issues = self.validator.validate(
            resource, profiled=self.mode != "off", core_rules=self.core
        )
        errors = [i for i in issues if i.is_error]
        if errors:
            metrics.VALIDATION_FAILURES.labels(rtype).inc()
            status = 400 if any(i.structural for i in errors) else 422
            raise OperationOutcomeError([_issue(i, rtype, where) for i in issues], status)


def _issue(vi: Any, rtype: str, where: str) -> Issue:
    """A validator issue, its location re-rooted under a bundle entry if need be."""
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
