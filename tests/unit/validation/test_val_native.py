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
    assert {"cnp-5", "cnpr-1", "cnpr-2", "cnpr-3", "cno-1", "cno-2"} <= set(seen)


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


def _cn_invariant(registry, profile: str, key: str):
    from gateway.validation.validator import Validator

    tree = Validator(registry).trees.get(f"https://fhir.jtys.cn/StructureDefinition/{profile}")
    found = [inv for inv in tree.invariants if inv.key == key]
    assert found and found[0].native is not None, key
    return found[0]


def _both(inv, resource: dict) -> bool:
    env = {"resource": resource, "rootResource": resource}
    native = inv.check(resource, resource["resourceType"], env)
    assert native == inv.check_fhirpath(resource, resource["resourceType"], env), resource
    return native


_SEX = "https://fhir.jtys.cn/StructureDefinition/cn-sex-gb2261"
_GB2261 = "urn:oid:2.16.156.10011.2.3.3.4"


@pytest.mark.parametrize(
    "code, gender, holds",
    [
        ("1", "male", True),
        ("2", "female", True),
        ("0", "unknown", True),
        ("9", "unknown", True),
        ("9", "other", False),  # 未说明的性别 is unknown only
        ("5", "male", True),  # legacy: 女性改(变)为男性, the present sex
        ("6", "female", True),  # legacy: 男性改(变)为女性
        ("5", "female", False),
        ("6", "male", False),
        ("1", "female", False),
        ("1", None, False),
    ],
)
def test_cnp_3_maps_gb_2261_to_gender(registry, code, gender, holds):
    patient = {
        "resourceType": "Patient",
        "extension": [{"url": _SEX, "valueCoding": {"system": _GB2261, "code": code}}],
    }
    if gender:
        patient["gender"] = gender
    assert _both(_cn_invariant(registry, "cn-patient", "cnp-3"), patient) is holds


def test_cnp_3_reads_the_code_under_the_former_system_url(registry):
    former = "https://fhir.jtys.cn/CodeSystem/gb-t-2261-1"
    patient = {
        "resourceType": "Patient",
        "gender": "female",
        "extension": [{"url": _SEX, "valueCoding": {"system": former, "code": "2"}}],
    }
    inv = _cn_invariant(registry, "cn-patient", "cnp-3")
    assert _both(inv, patient) is True
    patient["gender"] = "male"
    assert _both(inv, patient) is False


@pytest.mark.parametrize(
    "name, holds",
    [
        ({"text": "王秀英", "family": "王", "given": ["秀英"]}, True),
        ({"text": "秀英王", "family": "王", "given": ["秀英"]}, False),  # no dot: family first
        ({"text": "艾力·买买提", "family": "买买提", "given": ["艾力"]}, True),
        ({"text": "艾力·买买提", "family": "艾力", "given": ["买买提"]}, True),
        ({"text": "艾力\u2022买买提", "family": "买买提", "given": ["艾力"]}, True),  # bullet
        ({"text": "艾力\u30fb买买提", "family": "买买提", "given": ["艾力"]}, True),  # katakana dot
        ({"text": "艾力\uff0e买买提", "family": "买买提", "given": ["艾力"]}, True),  # U+FF0E
        ({"text": "艾力·买买提", "family": "买买", "given": ["艾力"]}, False),
        ({"text": "艾力·买买提", "family": "买买提"}, True),
        ({"text": "艾力·买买提", "given": ["艾力"]}, True),
        ({"text": "艾力·买买提", "given": ["买买"]}, False),
        (
            {"text": "阿依古丽·艾则孜·吐尔逊", "family": "吐尔逊", "given": ["阿依古丽", "艾则孜"]},
            True,
        ),
    ],
)
def test_cnp_5_accepts_minority_names_with_a_middle_dot_in_either_order(registry, name, holds):
    patient = {"resourceType": "Patient", "name": [name]}
    assert _both(_cn_invariant(registry, "cn-patient", "cnp-5"), patient) is holds


@pytest.mark.parametrize(
    "gender, birth, card, key, holds",
    [
        ("male", "1981-07-16", "410102198107162538", "cnpr-3", True),
        ("female", "1981-07-16", "410102198107162538", "cnpr-3", False),
        ("other", "1981-07-16", "410102198107162538", "cnpr-3", True),
        ("male", "1981-07-16", "410102198107162538", "cnpr-2", True),
        ("male", "1981-07-17", "410102198107162538", "cnpr-2", False),
        ("male", None, "410102198107162538", "cnpr-2", True),
        ("male", "1983-09-19", "44010419830919451x", "cnpr-2", True),
    ],
)
def test_practitioner_id_card_birth_date_and_sex_digit(registry, gender, birth, card, key, holds):
    practitioner = {
        "resourceType": "Practitioner",
        "gender": gender,
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": card}],
    }
    if birth:
        practitioner["birthDate"] = birth
    assert _both(_cn_invariant(registry, "cn-practitioner", key), practitioner) is holds
