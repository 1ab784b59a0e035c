"""The contract search parameters (profiles/SearchParameter/) end to end over HTTP, on SQLite
and PostgreSQL: each finds the contracts (teams, residents) it should and not the others, and
the CapabilityStatement lists it with its definition.

The contracts are our CarePlan examples without their category marker: the domain rules
(tests/policy) leave such a CarePlan alone, so revoked and completed contracts can be stored
as they are, and the parameters index the extensions whatever the category. The team and the
residents are small inline resources, so the answers do not move with the other examples.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json
from tests.search.conftest import ids, make_client, seed

CN = "https://fhir.jtys.cn"
EXT = CN + "/StructureDefinition/"


def unmarked(contract: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in contract.items() if k != "category"}


CONTRACTS = {
    p.stem.removeprefix("CarePlan-"): unmarked(read_json(p))
    for p in sorted((default_profiles_dir() / "examples").glob("CarePlan-*.json"))
}


def team(tid: str, model: str) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": tid,
        "extension": [
            {
                "url": EXT + "cn-team-model",
                "valueCoding": {"system": CN + "/CodeSystem/team-model", "code": model},
            }
        ],
        "status": "active",
    }


def resident(pid: str, *populations: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "extension": [
            {
                "url": EXT + "cn-key-population",
                "valueCoding": {"system": CN + "/CodeSystem/key-population", "code": code},
            }
            for code in populations
        ],
    }


DOCTOR = {"resourceType": "PractitionerRole", "id": "cn-zhao-ming-gp", "active": True}


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    others = [
        team("team-111", "1+1+1"),
        team("team-rings", "three-rings"),
        resident("p-hypertension", "hypertension", "elderly-65"),
        resident("p-child", "child-0-6"),
        DOCTOR,
    ]
    await seed(app, [*CONTRACTS.values(), *others])


@pytest.fixture(scope="module")
async def http(app):
    async with make_client(app) as c:
        yield c


HOUSEHOLD = {"cn-contract-zhou-wei-2023", "cn-contract-wang-2023"}
ZHAO_MING = set(CONTRACTS) - {"cn-contract-aili-maimaiti-2026"}

CASES = [
    ("CarePlan", {"sign-type": "renewal"}, {"cn-contract-wang-2026"}),
    (
        "CarePlan",
        {"sign-type": f"{CN}/CodeSystem/sign-type|new"},
        set(CONTRACTS) - {"cn-contract-wang-2026"},
    ),
    ("CarePlan", {"sign-type": "switch"}, set()),
    ("CarePlan", {"sign-type": f"{CN}/CodeSystem/signing-unit|renewal"}, set()),
    ("CarePlan", {"signing-channel": "online"}, {"cn-contract-wang-2026"}),
    ("CarePlan", {"signing-channel:not": "online"}, set(CONTRACTS) - {"cn-contract-wang-2026"}),
    ("CarePlan", {"termination-reason": "moved-out"}, HOUSEHOLD),
    ("CarePlan", {"termination-reason": "died"}, set()),
    ("CarePlan", {"signing-unit": "household"}, HOUSEHOLD),
    ("CarePlan", {"signing-unit": "functional-community"}, {"cn-contract-aili-maimaiti-2026"}),
    (
        "CarePlan",
        {"signing-unit": "individual", "status": "active"},
        {"cn-contract-wang-2026", "cn-contract-zhou-wei-2024"},
    ),
    ("CarePlan", {"responsible-doctor": "PractitionerRole/cn-zhao-ming-gp"}, ZHAO_MING),
    ("CarePlan", {"responsible-doctor": "cn-xj-tianshan-gp"}, {"cn-contract-aili-maimaiti-2026"}),
    ("CarePlan", {"responsible-doctor": "PractitionerRole/nobody"}, set()),
    ("CarePlan", {"responsible-doctor:PractitionerRole.active": "true"}, ZHAO_MING),
    # a household signing: the members' contracts share the household-contract identifier
    ("CarePlan", {"identifier": f"{CN}/sid/household-contract|JT410102202300017"}, HOUSEHOLD),
    ("CareTeam", {"team-model": "1+1+1"}, {"team-111"}),
    ("CareTeam", {"team-model": f"{CN}/CodeSystem/team-model|three-rings"}, {"team-rings"}),
    ("CareTeam", {"team-model": "5+X"}, set()),
    ("Patient", {"key-population": "hypertension"}, {"p-hypertension"}),
    ("Patient", {"key-population": "child-0-6,elderly-65"}, {"p-hypertension", "p-child"}),
    ("Patient", {"key-population": "diabetes"}, set()),
]


@pytest.mark.parametrize(("rtype", "params", "want"), CASES, ids=lambda v: str(v))
async def test_contract_search_parameter(http, rtype, params, want):
    strict = {"prefer": "handling=strict"}  # an unknown parameter would be a 400, not ignored
    assert set(await ids(http, f"/{rtype}", params=params, headers=strict)) == want


async def test_the_responsible_doctor_is_included(http):
    r = await http.get(
        "/CarePlan",
        params={"sign-type": "renewal", "_include": "CarePlan:responsible-doctor"},
    )
    assert r.status_code == 200, r.text
    found = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in r.json()["entry"]}
    assert found == {("CarePlan", "match"), ("PractitionerRole", "include")}


SERVED = {
    "CarePlan": {
        "sign-type",
        "signing-channel",
        "termination-reason",
        "signing-unit",
        "responsible-doctor",
    },
    "CareTeam": {"team-model"},
    "Patient": {"key-population"},
}


async def test_the_capability_statement_lists_them(http):
    r = await http.get("/metadata")
    assert r.status_code == 200
    entries = {e["type"]: e for e in r.json()["rest"][0]["resource"]}
    for rtype, codes in SERVED.items():
        listed = {p["name"]: p for p in entries[rtype].get("searchParam", [])}
        assert codes <= set(listed), codes - set(listed)
        for code in codes:
            assert listed[code]["definition"].startswith(CN + "/SearchParameter/")
    assert "CarePlan:responsible-doctor" in entries["CarePlan"]["searchInclude"]
