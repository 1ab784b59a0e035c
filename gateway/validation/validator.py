"""Validator: a resource against the R4 core definitions and the profiles that apply to it.

Which profiles apply: the ones asked for (`profiles=`), the ones the resource claims in
meta.profile, and our default profile for its type (configurable, see DEFAULT_PROFILES).
A profile's snapshot holds everything its base says, so the core definition is walked only
when no profile applies. An unknown claimed profile is a warning (an error in strict mode).

Construct once from a ProfileRegistry and share: compiled trees are cached and immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.validation.issues import Issue, operation_outcome, sort_issues
from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.registry import CORE_SD, ProfileRegistry
from gateway.validation.trees import TreeCache
from gateway.validation.walker import Walker

_SD = CANONICAL_BASE + "/StructureDefinition/"
_CATEGORY = CANONICAL_BASE + "/CodeSystem/family-doctor-category"
_RESERVED = CANONICAL_BASE + "/CodeSystem/reserved-resource"
_HEALTH_EXAM = CANONICAL_BASE + "/sid/health-exam"
_FOLLOWUP = CANONICAL_BASE + "/sid/followup"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _has_code(element: str, code: str, system: str = _CATEGORY) -> Callable[[dict], bool]:
    def test(resource: dict[str, Any]) -> bool:
        value = resource.get(element)
        for concept in value if isinstance(value, list) else [value]:
            codings = concept.get("coding") if isinstance(concept, dict) else None
            for coding in codings if isinstance(codings, list) else []:
                if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) == (
                    system,
                    code,
                ):
                    return True
        return False

    return test


def _has_system(element: str, system: str) -> Callable[[dict], bool]:
    """A coding from `system` in the element (one CodeableConcept or a list of them)."""

    def test(resource: dict[str, Any]) -> bool:
        value = resource.get(element)
        for concept in value if isinstance(value, list) else [value]:
            codings = concept.get("coding") if isinstance(concept, dict) else None
            for coding in codings if isinstance(codings, list) else []:
                if isinstance(coding, dict) and coding.get("system") == system:
                    return True
        return False

    return test


def _either(*tests: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda resource: any(test(resource) for test in tests)


def _both(*tests: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda resource: all(test(resource) for test in tests)


def _has_identifier(*systems: str) -> Callable[[dict], bool]:
    """An identifier from one of `systems` (our record numbers mark the health-record forms)."""

    def test(resource: dict[str, Any]) -> bool:
        value = resource.get("identifier")
        return any(
            isinstance(i, dict) and i.get("system") in systems
            for i in (value if isinstance(value, list) else [])
        )

    return test


def _has_extension(url: str) -> Callable[[dict], bool]:
    def test(resource: dict[str, Any]) -> bool:
        return any(
            isinstance(e, dict) and e.get("url") == url for e in resource.get("extension", [])
        )

    return test


@dataclass(frozen=True, slots=True)
class DefaultProfile:
    """Apply `profile` to every `resource_type` resource for which `when` holds (or always)."""

    resource_type: str
    profile: str
    when: Callable[[dict[str, Any]], bool] | None = None


# Our domain resources, held to their profile when they carry our marker (category code or
# extension): a CarePlan that is not a contract is not held to the contract profile. Standard
# FHIR from anyone else is judged by the R4 core definitions and the profiles it claims.
DEFAULT_PROFILES: tuple[DefaultProfile, ...] = (
    DefaultProfile(
        "CareTeam", _SD + "cn-family-doctor-team", _has_code("category", "family-doctor-team")
    ),
    DefaultProfile(
        "CarePlan",
        _SD + "cn-family-doctor-contract",
        _has_code("category", "family-doctor-contract"),
    ),
    DefaultProfile(
        "Consent", _SD + "cn-contract-consent", _has_code("category", "contract-consent")
    ),
    DefaultProfile("Group", _SD + "cn-household", _has_code("code", "household")),
    DefaultProfile(
        "PlanDefinition", _SD + "cn-service-package", _has_code("type", "service-package")
    ),
    DefaultProfile(
        "ChargeItemDefinition",
        _SD + "cn-service-package-charge",
        _has_extension(_SD + "cn-charged-package"),
    ),
    DefaultProfile("ServiceRequest", _SD + "cn-referral", _has_code("category", "referral")),
    DefaultProfile(
        "Task",
        _SD + "cn-referral-task",
        _has_system("businessStatus", CANONICAL_BASE + "/CodeSystem/referral-status"),
    ),
    DefaultProfile(  # a receiving doctor's decision on an earlier result (accepted | repeated)
        "Task",
        _SD + "cn-recognition-decision",
        _has_system("businessStatus", CANONICAL_BASE + "/CodeSystem/recognition-outcome"),
    ),
    # A hospital's Schedule, Slot and Appointment are ours when they are of a reserved-resource
    # kind (serviceCategory: expert, outpatient, examination, bed), and a Slot also when it
    # carries the reservation mark; an Appointment of another kind is not held to cn-appointment
    # for being based on a referral. A referral Bundle only when it claims cn-referral-bundle.
    DefaultProfile("Schedule", _SD + "cn-schedule", _has_system("serviceCategory", _RESERVED)),
    DefaultProfile(
        "Slot",
        _SD + "cn-slot",
        _either(
            _has_system("serviceCategory", _RESERVED), _has_extension(_SD + "cn-slot-reservation")
        ),
    ),
    DefaultProfile(
        "Appointment", _SD + "cn-appointment", _has_system("serviceCategory", _RESERVED)
    ),
    DefaultProfile(
        "MedicationRequest",
        _SD + "cn-long-prescription",
        _has_code("category", "long-prescription"),
    ),
    DefaultProfile(
        "DiagnosticReport",
        _SD + "cn-recognised-report",
        _has_extension(_SD + "cn-result-recognition"),
    ),
    DefaultProfile(
        "Observation",
        _SD + "cn-recognised-observation",
        _has_extension(_SD + "cn-result-recognition"),
    ),
    # The health-record forms (健康体检表, 高血压 / 2 型糖尿病随访): the check and the visit by
    # their number, a measurement by the number of its form and a vital-signs or laboratory
    # category (the forms' conclusions, 健康评价 and 此次随访分类, are not measurements).
    DefaultProfile("Encounter", _SD + "cn-health-exam-encounter", _has_identifier(_HEALTH_EXAM)),
    DefaultProfile("Encounter", _SD + "cn-followup-encounter", _has_identifier(_FOLLOWUP)),
    DefaultProfile(
        "Observation",
        _SD + "cn-record-observation",
        _both(
            _has_identifier(_HEALTH_EXAM, _FOLLOWUP),
            _either(
                _has_code("category", "vital-signs", _OBSERVATION_CATEGORY),
                _has_code("category", "laboratory", _OBSERVATION_CATEGORY),
            ),
        ),
    ),
)

# A region whose data is all Chinese may hold every person and institution to the CN profiles
# as well (GATEWAY_PROFILE_VALIDATION=cn).
CN_PROFILES: tuple[DefaultProfile, ...] = (
    DefaultProfile("Patient", _SD + "cn-patient"),
    DefaultProfile("Organization", _SD + "cn-organization"),
    DefaultProfile("Practitioner", _SD + "cn-practitioner"),
    DefaultProfile("PractitionerRole", _SD + "cn-practitioner-role"),
    *DEFAULT_PROFILES,
)


class Validator:
    def __init__(
        self,
        registry: ProfileRegistry,
        default_profiles: Sequence[DefaultProfile] = DEFAULT_PROFILES,
        strict: bool = False,
        unknown_extensions: str = "warning",
        security_checks: bool = False,
    ) -> None:
        """unknown_extensions: the severity ("warning" or "error") of an extension defined
        nowhere the registry knows. In our namespace and the R4 core one, whose definitions
        are all here, an unknown extension is always an error; elsewhere the gateway cannot
        fetch every implementation guide, so by default such an extension is accepted with a
        warning after its structure is checked (a profile or extension definition put in
        profiles/ makes it known). security_checks: HTML tags in string and markdown values
        are errors instead of information (the reference validator's option of that name)."""
        if unknown_extensions not in ("warning", "error"):
            raise ValueError(f"unknown_extensions: warning or error, not {unknown_extensions!r}")
        self.registry = registry
        self.trees = TreeCache(registry)
        self.default_profiles = tuple(default_profiles)
        self.strict = strict
        self.unknown_extensions = unknown_extensions
        self.security_checks = security_checks

    # ---- public ----
    def validate(
        self,
        resource: Any,
        profiles: Sequence[str] | None = None,
        mode: str | None = None,
        strict: bool | None = None,
        *,
        profiled: bool = True,
        core_rules: bool = True,
    ) -> list[Issue]:
        """Every issue found; errors first. `mode`: create | update | delete (FHIR $validate).

        profiled=False ignores the profiles a resource claims and our default ones (structure
        and core rules only); core_rules=False walks the core definitions for structure only
        (JSON form, elements, primitives, cardinality) wherever no profile applies."""
        strict = self.strict if strict is None else strict
        if mode == "delete":
            return []
        issues = BoundedIssues(MAX_ISSUES)
        if not isinstance(resource, dict):
            return [Issue.make("VAL-1000", "", structural=True, detail="not a JSON object")]
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not self.registry.is_resource_type(rtype):
            return [Issue.make("VAL-1012", "resourceType", structural=True, type=rtype)]
        if mode == "update" and not resource.get("id"):
            issues.append(Issue.make("VAL-1081", f"{rtype}.id"))
        env = {"resource": resource, "rootResource": resource, "fullUrls": _full_urls(resource)}
        walk = _Walk(list(profiles or ()), strict, profiled, core_rules)
        found: list[Issue] = issues
        try:
            self._one(resource, rtype, env, issues, walk, defaults=True)
        except TooManyIssues:
            # Bounded work and answer for any body: the first MAX_ISSUES errors, and one more
            # saying the walk stopped there (a million broken elements must not become a
            # million issues, a gigabyte of OperationOutcome and minutes of CPU).
            found = [*issues, Issue.make("VAL-1114", rtype, structural=True, max=MAX_ISSUES)]
        else:
            if issues.dropped:
                note = Issue.make("VAL-1115", rtype, severity="information", count=issues.dropped)
                found = [*issues, note]
        return sort_issues(_dedupe(found))

    def outcome(self, issues: list[Issue]) -> dict[str, Any]:
        return operation_outcome(issues)

    def profiles_for(self, resource: dict[str, Any]) -> list[str]:
        """Canonical URLs of the default profiles that apply to a resource."""
        rtype = resource.get("resourceType")
        return [
            d.profile
            for d in self.default_profiles
            if d.resource_type == rtype and (d.when is None or d.when(resource))
        ]

    # ---- internals ----
    def _one(
        self,
        resource: dict,
        path: str,
        env: dict,
        issues: list[Issue],
        walk: _Walk,
        defaults: bool,
    ) -> None:
        def nested(value: dict, where: str, outer: dict) -> None:
            self._nested(value, where, outer, issues, walk)

        trees, profiled = self._trees_for(resource, path, issues, walk, defaults)
        walker = Walker(
            self.trees,
            issues,
            nested,
            rules=profiled or walk.core_rules,
            unknown_extensions=self.unknown_extensions,
            security_checks=self.security_checks,
        )
        for tree in trees:
            walker.resource(tree, resource, path, env)

    def _nested(
        self, value: dict, path: str, outer: dict, issues: list[Issue], walk: _Walk
    ) -> None:
        rtype = value.get("resourceType")
        if not isinstance(rtype, str) or not self.registry.is_resource_type(rtype):
            issues.append(
                Issue.make("VAL-1012", f"{path}.resourceType", structural=True, type=rtype)
            )
            return
        contained = path.rsplit(".", 1)[-1].startswith("contained")
        env = {
            "resource": value,
            "rootResource": outer["rootResource"] if contained else value,
            "fullUrls": {**outer["fullUrls"], **_full_urls(value)},
        }
        inner = _Walk([], walk.strict, walk.profiled, walk.core_rules)
        self._one(value, path, env, issues, inner, defaults=not contained)

    def _trees_for(
        self,
        resource: dict,
        path: str,
        issues: list[Issue],
        walk: _Walk,
        defaults: bool,
    ) -> tuple[list, bool]:
        """The trees to walk, and whether they are profiles (else the core definition)."""
        rtype = resource["resourceType"]
        strict = walk.strict
        meta = resource.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) and walk.profiled else None
        if not isinstance(claimed, list):  # a wrong JSON shape is the walk's to report
            claimed = []
        wanted: list[tuple[str, str]] = [(u, path) for u in walk.explicit]
        wanted += [
            (u, f"{path}.meta.profile[{i}]") for i, u in enumerate(claimed) if isinstance(u, str)
        ]
        if defaults and walk.profiled:
            wanted += [(u, path) for u in self.profiles_for(resource)]
        trees, seen = [], set()
        for url, where in wanted:
            base_url = url.split("|", 1)[0]
            if base_url in seen or base_url == CORE_SD + rtype:
                continue
            seen.add(base_url)
            tree = self.trees.get(base_url)
            if tree is None:
                severity = "error" if strict else "warning"
                issues.append(Issue.make("VAL-1070", where, severity, profile=url))
            elif tree.path != rtype:
                issues.append(
                    Issue.make("VAL-1071", where, profile=url, expected=tree.path, type=rtype)
                )
            else:
                trees.append(tree)
        if trees:
            return trees, True
        core = self.trees.type_root(rtype)
        return ([core] if core is not None else []), False


MAX_ISSUES = 1000


class TooManyIssues(Exception):
    pass


class BoundedIssues(list):  # type: ignore[type-arg]
    """The issues of one validation, bounded: one error past `limit` stops the walk; warnings
    and information past `limit` are only counted (a big valid Bundle may carry thousands of
    harmless warnings, and must still be judged on all its errors)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.errors = 0
        self.dropped = 0

    def append(self, issue: Issue) -> None:  # type: ignore[override]
        if issue.is_error:
            if self.errors >= self.limit:
                raise TooManyIssues
            self.errors += 1
        elif len(self) - self.errors >= self.limit:
            self.dropped += 1
            return
        super().append(issue)

    def extend(self, issues: Any) -> None:  # type: ignore[override]
        for issue in issues:
            self.append(issue)


@dataclass(frozen=True, slots=True)
class _Walk:
    """What one validate() call asks for, passed down to nested resources."""

    explicit: list[str]  # profiles asked for by the caller ($validate's profile)
    strict: bool
    profiled: bool
    core_rules: bool


def _full_urls(resource: dict[str, Any]) -> dict[str, str]:
    """fullUrl (and Type/id) → resource type for the entries of a Bundle."""
    if resource.get("resourceType") != "Bundle":
        return {}
    out: dict[str, str] = {}
    for entry in resource.get("entry", []) if isinstance(resource.get("entry"), list) else []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            continue
        if isinstance(entry.get("fullUrl"), str):
            out[entry["fullUrl"]] = res["resourceType"]
        if isinstance(res.get("id"), str):
            out[f"{res['resourceType']}/{res['id']}"] = res["resourceType"]
    return out


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for i in issues:
        key = (i.message_id, i.expression, i.text_en)
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out
