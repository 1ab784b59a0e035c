"""The health-record forms' mappings (health-exam, chronic-followup) claim our profiles, and
every resource their fixtures become is valid against the profile it claims: the check
cn-health-exam-encounter, the visit cn-followup-encounter, each measurement
cn-record-observation (its encounter the record's Encounter, its identifier the record's
number). The forms' conclusions (健康评价, 此次随访分类) are not measurements and claim none.
The profiles are not decoration: a mapped measurement without its number, or with a unit
outside UCUM, is refused by the profile it claims."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.mapping.registry import DEFAULT_DIR
from tests.mappings.fixtures import mapped

SD = "https://fhir.jtys.cn/StructureDefinition/"
ENCOUNTER = {
    "health-exam": SD + "cn-health-exam-encounter",
    "chronic-followup": SD + "cn-followup-encounter",
}
RECORD = SD + "cn-record-observation"
SID = {
    "health-exam": "https://fhir.jtys.cn/sid/health-exam",
    "chronic-followup": "https://fhir.jtys.cn/sid/followup",
}
MEASUREMENT = {"vital-signs", "laboratory"}
CASES = [
    (name, path)
    for name in ENCOUNTER
    for path in sorted((DEFAULT_DIR / name / "fixtures").glob("*.input.*"))
]


def _categories(resource: dict[str, Any]) -> set[str]:
    return {
        c.get("code") for cat in resource.get("category") or [] for c in cat.get("coding") or []
    }


def _records(name: str, path) -> list[list[Any]]:
    """Per stored record, its planned resources (a rejected record has none)."""
    return [record.entries for record in mapped(name, path) if record.ok]


@pytest.mark.parametrize("case", CASES, ids=[f"{n}/{p.name.split('.input.')[0]}" for n, p in CASES])
def test_every_mapped_resource_is_valid_against_the_profile_it_claims(case, validator) -> None:
    name, path = case
    records = _records(name, path)
    assert records, "the fixture stores at least one record"
    for entries in records:
        encounters = [p for p in entries if p.type == "Encounter"]
        assert len(encounters) == 1
        (visit,) = encounters
        assert visit.resource["meta"]["profile"] == [ENCOUNTER[name]]
        measurements = 0
        for planned in entries:
            resource = planned.resource
            claimed = (resource.get("meta") or {}).get("profile") or []
            if planned.type == "Observation":
                if _categories(resource) & MEASUREMENT:
                    measurements += 1
                    assert claimed == [RECORD], planned.spec.name
                    assert resource["encounter"] == {"reference": visit.full_url}
                    numbers = [i for i in resource["identifier"] if i["system"] == SID[name]]
                    assert numbers == visit.resource["identifier"]
                else:  # the form's conclusion
                    assert claimed == [], planned.spec.name
            for url in claimed:
                issues = validator.validate(resource, [url])
                errors = [(i.expression, i.text_en) for i in issues if i.is_error]
                assert errors == [], (planned.spec.name, url, errors)
        assert measurements > 0


def _first_measurement(name: str, path) -> dict[str, Any]:
    for entries in _records(name, path):
        for planned in entries:
            if planned.type == "Observation" and _categories(planned.resource) & MEASUREMENT:
                return copy.deepcopy(planned.resource)
    raise AssertionError("no measurement")


def _failed(validator, resource: dict[str, Any], key: str) -> bool:
    return any(
        i.is_error and f"Constraint {key} failed" in i.text_en for i in validator.validate(resource)
    )


@pytest.mark.parametrize("name", sorted(ENCOUNTER))
def test_the_claimed_profile_refuses_a_broken_measurement(name: str, validator) -> None:
    path = next(p for n, p in CASES if n == name)
    good = _first_measurement(name, path)
    assert not [i for i in validator.validate(good) if i.is_error]

    unnumbered = copy.deepcopy(good)
    unnumbered["identifier"] = [{"system": "https://fhir.jtys.cn/sid/lab-result", "value": "x"}]
    assert _failed(validator, unnumbered, "cnro-1")

    local_unit = copy.deepcopy(good)
    for q in [local_unit.get("valueQuantity")] + [
        c.get("valueQuantity") for c in local_unit.get("component") or []
    ]:
        if q:
            q.pop("system")
    assert _failed(validator, local_unit, "cnro-2")

    unlinked = copy.deepcopy(good)
    del unlinked["encounter"]
    assert [i.expression for i in validator.validate(unlinked) if i.is_error] == [
        "Observation.encounter"
    ]
