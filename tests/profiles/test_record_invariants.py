"""The health-record profiles' invariants (cnro-* of cn-record-observation, cnfe-* of
cn-followup-encounter): each has a native fast path, and it gives what fhirpathpy gives for the
FHIRPath on every combination of record numbers, quantities (value and components, with and
without UCUM) and follow-up modes, malformed shapes included."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from gateway.validation.elements import ElementNode
from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json

SD = "https://fhir.jtys.cn/StructureDefinition/"
EXAMPLES = default_profiles_dir() / "examples"
GLUCOSE = EXAMPLES / "Observation-cn-record-glucose-wang-2026.json"
FOLLOWUP = EXAMPLES / "Encounter-cn-followup-wang-20260410.json"
EXAM_SID = "https://fhir.jtys.cn/sid/health-exam"
FOLLOWUP_SID = "https://fhir.jtys.cn/sid/followup"
UCUM = "http://unitsofmeasure.org"


def _invariants(node: ElementNode | None, prefix: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        found.update({i.key: i for i in n.invariants if i.key.startswith(prefix)})
        stack.extend(n.children.values())
        stack.extend(n.slices)
    return found


def test_every_record_invariant_is_native(validator: Any) -> None:
    record = _invariants(validator.trees.get(SD + "cn-record-observation"), "cnro-")
    follow = _invariants(validator.trees.get(SD + "cn-followup-encounter"), "cnfe-")
    assert set(record) == {"cnro-1", "cnro-2"} and set(follow) == {"cnfe-1"}
    assert all(inv.native is not None for inv in [*record.values(), *follow.values()])


IDENTIFIERS: list[Any] = [
    None,
    [],
    [{"system": EXAM_SID, "value": "TJ1"}],
    [{"system": FOLLOWUP_SID, "value": "SF1"}],
    [{"system": EXAM_SID, "value": "TJ1"}, {"system": FOLLOWUP_SID, "value": "SF1"}],
    [{"system": EXAM_SID, "value": "TJ1"}, {"system": EXAM_SID, "value": "TJ2"}],
    [{"system": "https://fhir.jtys.cn/sid/lab-result", "value": "x"}],
    [{"value": "no system"}, {"system": FOLLOWUP_SID, "value": "SF1"}],
    {"system": EXAM_SID, "value": "an object, not a list"},
]
QUANTITIES: list[Any] = [
    None,
    {"value": 7.2, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
    {"value": 7.2, "unit": "mmol/L"},
    {"value": 7.2, "unit": "mmol/L", "code": "mmol/L"},
    {"value": 7.2, "system": UCUM},
    {"value": 7.2, "system": "urn:local:units", "code": "mmol/L"},
    {"value": 7.2, "system": UCUM, "_code": {"extension": [{"url": "urn:x", "valueCode": "y"}]}},
]
COMPONENTS: list[Any] = [
    None,
    [{"valueQuantity": {"value": 146, "system": UCUM, "code": "mm[Hg]"}}],
    [
        {"valueQuantity": {"value": 146, "system": UCUM, "code": "mm[Hg]"}},
        {"valueQuantity": {"value": 92, "unit": "mmHg"}},
    ],
    [{"valueString": "阴性"}, {"valueQuantity": {"value": 92, "system": UCUM, "code": "mm[Hg]"}}],
    {"valueQuantity": {"value": 92, "unit": "mmHg"}},
]


def _agree(inv: Any, resource: dict[str, Any], value: Any, type_path: str) -> bool:
    env = {"resource": resource, "rootResource": resource}
    native = inv.check(value, type_path, env)
    assert native == inv.check_fhirpath(value, type_path, env), (inv.key, value)
    return bool(native)


def test_record_observation_natives_agree_with_fhirpathpy(validator: Any) -> None:
    found = _invariants(validator.trees.get(SD + "cn-record-observation"), "cnro-")
    base = read_json(GLUCOSE)
    seen: dict[str, set[bool]] = {"cnro-1": set(), "cnro-2": set()}
    for ids, quantity, components in itertools.product(IDENTIFIERS, QUANTITIES, COMPONENTS):
        obs = copy.deepcopy(base)
        parts = (("identifier", ids), ("valueQuantity", quantity), ("component", components))
        for name, value in parts:
            obs.pop(name, None)
            if value is not None:
                obs[name] = copy.deepcopy(value)
        for key, inv in found.items():
            seen[key].add(_agree(inv, obs, obs, "Observation"))
    assert all(outcomes == {True, False} for outcomes in seen.values()), seen


def test_followup_mode_native_agrees_with_fhirpathpy(validator: Any) -> None:
    (inv,) = _invariants(validator.trees.get(SD + "cn-followup-encounter"), "cnfe-").values()
    base = read_json(FOLLOWUP)
    seen = set()
    act = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    for coding in [
        {"system": act, "code": "AMB"},
        {"system": act, "code": "HH"},
        {"system": act, "code": "VR"},
        {"system": act, "code": "IMP"},
        {"system": act, "code": "amb"},
        {"system": act},
        {"system": act, "_code": {"extension": [{"url": "urn:x", "valueCode": "y"}]}},
    ]:
        encounter = copy.deepcopy(base)
        encounter["class"] = coding
        seen.add(_agree(inv, encounter, coding, "Coding"))
    assert seen == {True, False}
