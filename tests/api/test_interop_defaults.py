"""Interoperable by default: standard FHIR from anyone is accepted under `make run` settings;
our profiles apply when claimed or when our domain marks are carried; national identifiers
are checked wherever they appear; a region may hold every person to the CN profiles."""

from __future__ import annotations

import pytest

from gateway.validation.checksums import id_card_check_char
from tests.conftest import client_for, running_app

CN = "https://fhir.jtys.cn"
ID_CARD = "urn:oid:2.16.156.10011.1.3"
CARD = "41010219560312042" + id_card_check_char("41010219560312042")  # 1956-03-12, female


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Patient", "name": [{"family": "Smith"}]},
        {"resourceType": "Organization", "name": "General Hospital"},
        {"resourceType": "Practitioner", "name": [{"family": "Jones", "given": ["Ann"]}]},
        # R4 types the R4B models dropped
        {"resourceType": "MedicinalProduct", "name": [{"productName": "Aspirin 100 mg"}]},
        {"resourceType": "SubstanceSpecification", "description": "x"},
    ],
    ids=lambda r: r["resourceType"] + str(len(r)),
)
async def test_standard_fhir_is_accepted(client, resource):
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    read = await client.get(r.headers["location"].split("/fhir", 1)[1].split("/_history")[0])
    assert read.status_code == 200


async def test_a_claimed_cn_profile_applies(client):
    claimed = {
        "resourceType": "Patient",
        "meta": {"profile": [f"{CN}/StructureDefinition/cn-patient"]},
    }
    r = await client.post("/Patient", json=claimed)
    assert r.status_code == 422
    where = {e for i in r.json()["issue"] for e in i.get("expression", [])}
    assert {"Patient.gender", "Patient.birthDate"} <= where


async def test_our_domain_marks_call_our_profiles(client):
    contract = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [
            {
                "coding": [
                    {
                        "system": f"{CN}/CodeSystem/family-doctor-category",
                        "code": "family-doctor-contract",
                    }
                ]
            }
        ],
        "subject": {"reference": "Patient/x"},
    }
    r = await client.post("/CarePlan", json=contract)
    assert r.status_code == 422, r.text  # the contract profile needs a period, a team, …
    plain = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/x"},
    }
    assert (await client.post("/CarePlan", json=plain)).status_code == 201


async def test_national_identifiers_are_checked_on_any_patient(client):
    wrong = CARD[:-1] + ("0" if CARD[-1] != "0" else "1")
    r = await client.post(
        "/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": ID_CARD, "value": wrong}]},
    )
    assert r.status_code == 422
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "VAL-1090"
    assert r.json()["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    assert wrong not in r.text  # messages never repeat the number
    agrees = {
        "resourceType": "Patient",
        "identifier": [{"system": ID_CARD, "value": CARD}],
        "gender": "female",
        "birthDate": "1956-03-12",
    }
    assert (await client.post("/Patient", json=agrees)).status_code == 201
    r = await client.post("/Patient", json={**agrees, "birthDate": "1956-03-13"})
    assert r.status_code == 422
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "VAL-1092"


async def test_cn_mode_holds_every_patient_to_the_cn_profile(database_url):
    async with running_app(database_url, profile_validation="cn") as app, client_for(app) as c:
        r = await c.post(
            "/Patient", json={"resourceType": "Patient", "name": [{"family": "Smith"}]}
        )
        assert r.status_code == 422
        where = {e for i in r.json()["issue"] for e in i.get("expression", [])}
        assert "Patient.name[0].text" in where
        r = await c.post(
            "/Observation",
            json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        )
        assert r.status_code == 201  # only people and institutions, and our marked resources


async def test_structure_errors_are_400_and_rule_errors_422(client):
    r = await client.post("/Patient", json={"resourceType": "Patient", "colour": "red"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.colour"]
    r = await client.post(
        "/Observation",
        json={"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}},
    )
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["Observation.status"]


async def test_a_json_byte_order_mark_is_ignored(client):
    r = await client.post("/Patient", content=b"\xef\xbb\xbf" + b'{"resourceType": "Patient"}')
    assert r.status_code == 201, r.text
