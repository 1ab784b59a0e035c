"""The referral search parameters (profiles/SearchParameter/) end to end over HTTP, on SQLite
and PostgreSQL: ServiceRequest `referral-direction`, `referral-priority`, `green-channel` and
Slot `reservation` each find the resources they should and not the others, alone, combined and
with `:missing`; the CapabilityStatement lists them with their definitions.

The referrals are our ServiceRequest examples without their category marker (the referral rules
in gateway.policy leave such a ServiceRequest alone, so the examples are stored as they are;
the parameters index the extensions whatever the category), and two small inline ones. The
slots are the Slot example and inline busy slots (the gateway reserves only new free slots).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json
from tests.search.conftest import ids, make_client, seed

CN = "https://fhir.jtys.cn"
EXT = CN + "/StructureDefinition/"
EXAMPLES = default_profiles_dir() / "examples"


def unmarked(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("category", "meta")}


def referral(rid: str, direction: str, *priorities: str, green: bool | None = None) -> dict:
    ext: list[dict[str, Any]] = [
        {
            "url": EXT + "cn-referral-direction",
            "valueCoding": {"system": CN + "/CodeSystem/referral-direction", "code": direction},
        }
    ]
    ext += [
        {
            "url": EXT + "cn-referral-priority",
            "valueCoding": {"system": CN + "/CodeSystem/referral-priority", "code": code},
        }
        for code in priorities
    ]
    if green is not None:
        ext.append({"url": EXT + "cn-green-channel", "valueBoolean": green})
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "extension": ext,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/cn-wang-xiuying"},
    }


def slot(sid: str, kind: str, reserved: bool) -> dict[str, Any]:
    mark = {
        "url": EXT + "cn-slot-reservation",
        "valueCoding": {
            "system": CN + "/CodeSystem/slot-reservation",
            "code": "family-doctor-team",
        },
    }
    return {
        "resourceType": "Slot",
        "id": sid,
        "extension": [mark] if reserved else [],
        "serviceCategory": [
            {"coding": [{"system": CN + "/CodeSystem/reserved-resource", "code": kind}]}
        ],
        "schedule": {"reference": "Schedule/cn-schedule-liu-yang-expert"},
        "status": "busy",
        "start": "2026-03-11T08:30:00+08:00",
        "end": "2026-03-11T08:45:00+08:00",
    }


UP = "cn-referral-up-wang"  # up, green channel, all three priorities
DOWN = "cn-referral-down-wang"  # down, no green channel, no priorities
RESERVED = "cn-slot-liu-yang-20260304-0830"  # expert, reserved


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    examples = [
        unmarked(read_json(EXAMPLES / f"ServiceRequest-{UP}.json")),
        unmarked(read_json(EXAMPLES / f"ServiceRequest-{DOWN}.json")),
        unmarked(read_json(EXAMPLES / f"Slot-{RESERVED}.json")),
    ]
    others = [
        referral("sr-up-examination", "up", "examination", green=False),
        referral("sr-down-green", "down", green=True),  # where the pack allows it (Guandu)
        slot("slot-expert-open", "expert", reserved=False),
        slot("slot-exam-reserved", "examination", reserved=True),
    ]
    await seed(app, [*examples, *others])


@pytest.fixture(scope="module")
async def http(app):
    async with make_client(app) as c:
        yield c


DIRECTION = CN + "/CodeSystem/referral-direction"
PRIORITY = CN + "/CodeSystem/referral-priority"
CASES = [
    ("ServiceRequest", {"referral-direction": "up"}, {UP, "sr-up-examination"}),
    ("ServiceRequest", {"referral-direction": f"{DIRECTION}|down"}, {DOWN, "sr-down-green"}),
    ("ServiceRequest", {"referral-direction": f"{PRIORITY}|down"}, set()),
    ("ServiceRequest", {"referral-direction:not": "up"}, {DOWN, "sr-down-green"}),
    ("ServiceRequest", {"referral-priority": "admission"}, {UP}),
    ("ServiceRequest", {"referral-priority": f"{PRIORITY}|examination"}, {UP, "sr-up-examination"}),
    (
        "ServiceRequest",
        {"referral-priority": "expert-appointment,examination"},
        {UP, "sr-up-examination"},
    ),
    ("ServiceRequest", {"referral-priority:missing": "true"}, {DOWN, "sr-down-green"}),
    ("ServiceRequest", {"green-channel": "true"}, {UP, "sr-down-green"}),
    ("ServiceRequest", {"green-channel": "false"}, {"sr-up-examination"}),
    ("ServiceRequest", {"green-channel:missing": "true"}, {DOWN}),
    ("ServiceRequest", {"referral-direction": "down", "green-channel": "true"}, {"sr-down-green"}),
    ("ServiceRequest", {"referral-direction": "up", "referral-priority": "admission"}, {UP}),
    # the target department (R4 performer-type) with our 诊疗科目 codes
    ("ServiceRequest", {"performer-type": f"{CN}/CodeSystem/clinical-specialty|03.04"}, {UP}),
    ("Slot", {"reservation": "family-doctor-team"}, {RESERVED, "slot-exam-reserved"}),
    ("Slot", {"reservation:missing": "true"}, {"slot-expert-open"}),
    ("Slot", {"reservation": "family-doctor-team", "service-category": "expert"}, {RESERVED}),
    ("Slot", {"reservation:missing": "true", "service-category": "examination"}, set()),
]


@pytest.mark.parametrize(("rtype", "params", "want"), CASES, ids=lambda v: str(v))
async def test_referral_search_parameter(http, rtype, params, want):
    strict = {"prefer": "handling=strict"}  # an unknown parameter would be a 400, not ignored
    assert set(await ids(http, f"/{rtype}", params=params, headers=strict)) == want


SERVED = {
    "ServiceRequest": {"referral-direction", "referral-priority", "green-channel"},
    "Slot": {"reservation"},
}


async def test_the_capability_statement_lists_them(http):
    r = await http.get("/metadata")
    assert r.status_code == 200
    entries = {e["type"]: e for e in r.json()["rest"][0]["resource"]}
    for rtype, codes in SERVED.items():
        listed = {p["name"]: p for p in entries[rtype].get("searchParam", [])}
        assert codes <= set(listed), codes - set(listed)
        for code in codes:
            assert listed[code]["definition"] == f"{CN}/SearchParameter/{rtype.lower()}-{code}"
