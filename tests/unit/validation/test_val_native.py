"""Native invariant fast paths agree with fhirpathpy on real data."""

from __future__ import annotations

import json

import pytest

from gateway.validation.invariants import Invariant
from gateway.validation.locations import corpora_dir, default_profiles_dir
from gateway.validation.native import FHIRPATHPY_GAPS
from gateway.validation.native_cn import NATIVE_CN
from gateway.validation.registry import read_json


def _sample() -> list:
    corpus = corpora_dir()
    files = sorted((corpus / "fhir-r4-examples").glob("*.json"))[::3] if corpus else []
    files += sorted((default_profiles_dir() / "examples").glob("*.json"))
    return files


def _children_gap(key: str, value) -> bool:
    """fhirpathpy's children() skips elements that only have extensions (`_event: [...]`)."""
    return (
        key == "ele-1"
        and isinstance(value, dict)
        and all(k.startswith("_") or k == "id" for k in value)
    )


def _case_resource(case: dict):
    """An invalid-input case: an example (or inline resource) with a JSON patch applied."""
    import jsonpatch

    base = case.get("resource") or read_json(default_profiles_dir() / "examples" / case["example"])
    return jsonpatch.apply_patch(base, case.get("patch", []))


@pytest.fixture()
def recorder(monkeypatch):
    seen: dict[str, int] = {}
    mismatches: list[tuple] = []
    original = Invariant.check

    def check(self, value, type_path, env):
        got = original(self, value, type_path, env)
        if self.native is not None and self.key not in FHIRPATHPY_GAPS:
            seen[self.key] = seen.get(self.key, 0) + 1
            want = self.check_fhirpath(value, type_path, env)
            if got != want and not _children_gap(self.key, value):
                mismatches.append(
                    (self.key, type_path, json.dumps(value, ensure_ascii=False)[:200])
                )
        return got

    monkeypatch.setattr(Invariant, "check", check)
    return seen, mismatches


def test_native_invariants_match_fhirpathpy(registry, recorder):
    from gateway.validation.validator import Validator

    validator = Validator(registry)  # fresh: natives run through the patched check
    seen, mismatches = recorder
    for path in _sample():
        validator.validate(read_json(path))
    for case in sorted((default_profiles_dir().parent / "tests/profiles/cases").glob("*.json")):
        validator.validate(_case_resource(read_json(case)))
    assert not mismatches, mismatches[:5]
    assert {"ele-1", "ext-1", "dom-3", "cnp-1", "cnp-2", "cnp-3", "cnc-1", "cncd-1"} <= set(seen)


def test_every_local_invariant_has_a_native_path(registry):
    missing = []
    for sd in registry.local["StructureDefinition"]:
        for el in sd["differential"]["element"]:
            for c in el.get("constraint", []):
                if (c["key"], c["expression"]) not in NATIVE_CN:
                    missing.append(c["key"])
    assert not missing, f"add a native fast path in native_cn.py for {missing}"


LOINC_BP = {"system": "http://loinc.org", "code": "85354-9"}
LOINC_SYS = {"system": "http://loinc.org", "code": "8480-6"}


@pytest.mark.parametrize(
    "obs",
    [
        {"valueQuantity": {"value": 1}, "dataAbsentReason": {"text": "x"}},  # obs-6 broken
        {"_valueString": {"extension": []}, "dataAbsentReason": {"text": "x"}},
        {"dataAbsentReason": {"text": "x"}},
        {"valueQuantity": {"value": 1}, "component": [{"code": {"coding": [LOINC_BP]}}]},  # obs-7
        {"valueQuantity": {"value": 1}, "component": [{"code": {"coding": [LOINC_SYS]}}]},
        {"component": [{"code": {"coding": [LOINC_BP]}}]},
        {"valueString": "a", "component": [{"code": {"text": "no coding"}}]},
        {"valueString": "a", "component": [{"code": {"coding": [{**LOINC_BP, "display": "BP"}]}}]},
    ],
)
def test_observation_natives_agree_with_fhirpathpy(registry, obs):
    from gateway.validation.validator import Validator

    resource = {"resourceType": "Observation", "status": "final", "code": {"coding": [LOINC_BP]}}
    resource.update(obs)
    tree = Validator(registry).trees.type_root("Observation")
    env = {"resource": resource, "rootResource": resource}
    checked = 0
    for inv in tree.invariants:
        if inv.key in ("obs-6", "obs-7"):
            assert inv.native is not None
            assert inv.check(resource, "Observation", env) == inv.check_fhirpath(
                resource, "Observation", env
            ), inv.key
            checked += 1
    assert checked == 2
