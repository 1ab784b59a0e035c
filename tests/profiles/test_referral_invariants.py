"""The referral invariants (cnr-*, cnrt-*, cnap-*, cnlp-*, cnrb-*) on edge cases the examples
and cases do not reach: the native fast path gives what fhirpathpy gives for the FHIRPath, and
the answer is the one the rule states. And which resources the default profiles pick by our
marks (Schedule, Slot, Appointment, MedicationRequest)."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.validation.locations import default_profiles_dir
from gateway.validation.native_referral import BUSINESS_STATUS
from gateway.validation.registry import read_json

CN = "https://fhir.jtys.cn"
SD = CN + "/StructureDefinition/"
EXAMPLES = default_profiles_dir() / "examples"
KEYS = {
    "cn-referral": {"cnr-2", "cnr-3", "cnr-4", "cnr-5"},
    "cn-referral-task": {"cnrt-1"},
    "cn-appointment": {"cnap-1"},
    "cn-referral-bundle": {"cnrb-1", "cnrb-2", "cnrb-3"},
}
TASK_STATUSES = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]
REFERRAL_STATUSES = sorted({c for codes in BUSINESS_STATUS.values() for c in codes})


def example(name: str) -> dict[str, Any]:
    return read_json(EXAMPLES / name)


def root_invariants(validator, profile: str) -> dict[str, Any]:
    return {inv.key: inv for inv in validator.trees.get(SD + profile).invariants}


def agree(inv: Any, value: dict[str, Any], type_path: str, root: dict[str, Any]) -> bool:
    env = {"resource": root, "rootResource": root}
    native = inv.check(value, type_path, env)
    assert native == inv.check_fhirpath(value, type_path, env), (inv.key, value)
    return native


def test_every_referral_invariant_is_native_and_cnr_1_is_gone(validator):
    for profile, keys in KEYS.items():
        found = root_invariants(validator, profile)
        assert keys <= set(found), profile
        assert all(found[k].native is not None for k in keys)
    assert "cnr-1" not in root_invariants(validator, "cn-referral")


def test_the_business_status_table_is_the_packs(validator):
    """cnrt-1 states the same table as the national pack's referrals.task.business_status."""
    pack = yaml.safe_load(Path(default_profiles_dir() / "policy" / "national.yaml").read_text())
    table = pack["referrals"]["task"]["business_status"]
    assert {s: set(c) for s, c in table.items() if c} == {
        s: set(c) for s, c in BUSINESS_STATUS.items()
    }


@pytest.mark.parametrize("status", [*TASK_STATUSES, None])
def test_the_business_status_fits_the_status(validator, status):
    inv = root_invariants(validator, "cn-referral-task")["cnrt-1"]
    task = example("Task-cn-referral-task-wang.json")
    for code in REFERRAL_STATUSES:
        res = copy.deepcopy(task)
        res["businessStatus"]["coding"][0]["code"] = code
        res.pop("status") if status is None else res.update(status=status)
        want = status == "entered-in-error" or code in BUSINESS_STATUS.get(status or "", ())
        assert agree(inv, res, "Task", res) == want, (status, code)
    # a business status of another system (a hospital's own) is not ours to judge
    res = copy.deepcopy(task)
    res["businessStatus"] = {"coding": [{"system": "urn:oid:1.2.3", "code": "x"}]}
    assert agree(inv, res, "Task", res)


DIRECTIONS: list[list[str]] = [[], ["up"], ["down"], ["up", "down"]]


@pytest.mark.parametrize(
    ("directions", "priority", "fields"),
    [
        (d, p, f)
        for d, p, f in itertools.product(
            DIRECTIONS, [False, True], [(), ("impression",), ("advice",), ("treatment",)]
        )
    ],
    ids=str,
)
def test_what_rides_on_the_direction(validator, directions, priority, fields):
    invs = root_invariants(validator, "cn-referral")
    res = copy.deepcopy(example("ServiceRequest-cn-referral-up-wang.json"))
    res["extension"] = [
        {"url": SD + "cn-referral-direction", "valueCoding": {"code": d}} for d in directions
    ]
    if priority:
        res["extension"].append(
            {"url": SD + "cn-referral-priority", "valueCoding": {"code": "admission"}}
        )
    if fields:
        res["extension"].append(
            {
                "url": SD + "cn-referral-form",
                "extension": [{"url": f, "valueString": "x"} for f in fields],
            }
        )
    # no direction is the slice's error, not these invariants'
    up = directions in ([], ["up"])
    down = directions in ([], ["down"])
    assert agree(invs["cnr-2"], res, "ServiceRequest", res) == (not priority or up)
    assert agree(invs["cnr-3"], res, "ServiceRequest", res) == ("impression" not in fields or up)
    assert agree(invs["cnr-4"], res, "ServiceRequest", res) == ("advice" not in fields or down)


@pytest.mark.parametrize(
    ("actor", "holds"),
    [
        ({"reference": "Patient/cn-wang-xiuying"}, True),
        ({"reference": "https://his.example.cn/fhir/Patient/12/_history/2"}, True),
        ({"reference": "Patient?identifier=urn:oid:2.16.156.10011.1.3|410102195603120421"}, True),
        ({"reference": "urn:uuid:6f0c5a52-2d1e-4c55-9f3b-1d2e3f4a5b6c"}, True),
        ({"type": "Patient", "identifier": {"value": "410102195603120421"}}, True),
        ({"display": "王秀英"}, False),
        ({"reference": "PractitionerRole/cn-liu-yang-specialist"}, False),
        ({"reference": "RelatedPerson/p1", "type": "RelatedPerson"}, False),
        (None, False),
    ],
    ids=str,
)
def test_the_patient_takes_part(validator, actor, holds):
    inv = root_invariants(validator, "cn-appointment")["cnap-1"]
    res = copy.deepcopy(example("Appointment-cn-appointment-wang-20260304.json"))
    res["participant"] = [{"actor": actor} if actor else {"type": [{"text": "x"}]}] + [
        {"actor": {"reference": "Location/room-3"}, "status": "accepted"}
    ]
    assert agree(inv, res, "Appointment", res) == holds


@pytest.mark.parametrize(
    ("duration", "holds"),
    [
        ({"value": 30, "code": "d"}, True),
        ({"value": 12, "code": "wk"}, True),
        ({"value": 2, "code": "mo"}, True),
        ({"value": 0.5, "code": "mo"}, True),
        ({"value": 0, "code": "d"}, False),
        ({"value": -7, "code": "d"}, False),
        ({"value": 30, "code": "h"}, False),
        ({"value": 30, "code": "a"}, False),
        ({"value": 30}, True),  # no code: the cardinality's error, not cnlp-1's
        ({"code": "d"}, True),
        ({"code": "h"}, False),
        ({"value": 0}, False),
        ({"unit": "天"}, True),
    ],
    ids=str,
)
def test_the_supply_is_in_days_weeks_or_months(validator, duration, holds):
    tree = validator.trees.get(SD + "cn-long-prescription")
    found = [inv for inv in _all_invariants(tree) if inv.key == "cnlp-1"]
    assert found and found[0].native is not None
    res = example("MedicationRequest-cn-long-prescription-wang-amlodipine.json")
    value = {"system": "http://unitsofmeasure.org", **duration}
    assert agree(found[0], value, "Duration", res) == holds


def _all_invariants(node: Any) -> list[Any]:
    out = list(node.invariants)
    for child in node.children.values():
        out += _all_invariants(child)
    return out


def _entry(resource: dict[str, Any] | None, method: str = "PUT") -> dict[str, Any]:
    if resource is None:
        return {"request": {"method": "DELETE", "url": "Observation/old"}}
    return {"resource": resource, "request": {"method": method, "url": resource["resourceType"]}}


REFERRAL = {
    "resourceType": "ServiceRequest",
    "meta": {"profile": [SD + "cn-referral|0.1.0"]},
}
MARKED = {
    "resourceType": "ServiceRequest",
    "category": [
        {"coding": [{"system": CN + "/CodeSystem/family-doctor-category", "code": "referral"}]}
    ],
}
PLAIN = {"resourceType": "ServiceRequest", "meta": {"profile": [SD + "cn-referral-task"]}}
TASK = {"resourceType": "Task"}
DOC = {"resourceType": "DocumentReference"}
PATIENT = {"resourceType": "Patient"}


@pytest.mark.parametrize(
    ("resources", "one_referral", "one_task", "attachments"),
    [
        ([REFERRAL, TASK, DOC], True, True, True),
        ([MARKED], True, True, True),
        ([PLAIN], False, True, True),
        ([], False, True, True),
        ([None], False, True, True),
        ([REFERRAL, None, DOC], True, True, True),
        ([REFERRAL, MARKED], False, True, True),
        ([REFERRAL, TASK, TASK], True, False, True),
        ([REFERRAL, PATIENT], True, True, False),
    ],
    ids=str,
)
def test_what_a_referral_bundle_holds(validator, resources, one_referral, one_task, attachments):
    invs = root_invariants(validator, "cn-referral-bundle")
    bundle = {"resourceType": "Bundle", "type": "transaction"}
    if resources:
        bundle["entry"] = [_entry(copy.deepcopy(r)) for r in resources]
    assert agree(invs["cnrb-1"], bundle, "Bundle", bundle) == one_referral
    assert agree(invs["cnrb-2"], bundle, "Bundle", bundle) == one_task
    assert agree(invs["cnrb-3"], bundle, "Bundle", bundle) == attachments


RESERVED = {"coding": [{"system": CN + "/CodeSystem/reserved-resource", "code": "expert"}]}
OTHER = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-category", "code": "17"}]
}
MARK = {
    "url": SD + "cn-slot-reservation",
    "valueCoding": {"system": CN + "/CodeSystem/slot-reservation", "code": "family-doctor-team"},
}
LONG = {
    "coding": [{"system": CN + "/CodeSystem/family-doctor-category", "code": "long-prescription"}]
}


@pytest.mark.parametrize(
    ("resource", "profile"),
    [
        ({"resourceType": "Schedule", "serviceCategory": [OTHER, RESERVED]}, "cn-schedule"),
        ({"resourceType": "Schedule", "serviceCategory": [OTHER]}, None),
        ({"resourceType": "Slot", "serviceCategory": [RESERVED]}, "cn-slot"),
        ({"resourceType": "Slot", "extension": [MARK]}, "cn-slot"),
        ({"resourceType": "Slot", "serviceCategory": [OTHER]}, None),
        ({"resourceType": "Appointment", "serviceCategory": [RESERVED]}, "cn-appointment"),
        # based on a referral but of no reserved kind: standard FHIR, not ours
        ({"resourceType": "Appointment", "basedOn": [{"reference": "ServiceRequest/r"}]}, None),
        ({"resourceType": "MedicationRequest", "category": [LONG]}, "cn-long-prescription"),
        ({"resourceType": "MedicationRequest", "category": [OTHER]}, None),
        ({"resourceType": "Bundle", "type": "transaction"}, None),
    ],
    ids=str,
)
def test_the_default_profiles_pick_them_by_our_marks(validator, resource, profile):
    assert validator.profiles_for(resource) == ([SD + profile] if profile else [])
