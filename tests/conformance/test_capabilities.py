"""CapabilityStatement (R4 http.html §capabilities, capabilitystatement.html).

"Servers SHALL provide a Capability Statement that specifies which interactions and resources are
supported." What it lists must actually work: every listed type answers a search, and every
searchParam listed for a type is accepted (search.html: a server rejects, 400, parameters it does
not support unless handling=lenient — so a listed one must never be rejected).
"""

from __future__ import annotations

import pytest

TYPE_INTERACTIONS = {
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
}

VALUES = {
    "token": "http://example.org|x",
    "string": "x",
    "date": "2024-01-01",
    "reference": "Patient/x",
    "number": "1",
    "quantity": "1",
    "uri": "http://example.org/x",
}


@pytest.fixture
async def capability(client):
    r = await client.get("/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    return r.json()


def resource_entry(cs: dict, rtype: str) -> dict:
    [entry] = [r for r in cs["rest"][0]["resource"] if r["type"] == rtype]
    return entry


async def test_capability_statement_basics(capability):
    cs = capability
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] in ("instance", "capability")
    assert cs["status"] in ("draft", "active", "retired", "unknown")
    assert cs["date"]
    assert any(f in ("json", "application/fhir+json") for f in cs["format"])
    server = [r for r in cs["rest"] if r["mode"] == "server"]
    assert len(server) == 1
    system = {i["code"] for i in server[0]["interaction"]}
    assert {"transaction", "batch", "history-system"} <= system


async def test_patient_lists_every_instance_and_type_interaction(capability):
    patient = resource_entry(capability, "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert TYPE_INTERACTIONS <= codes


async def test_every_listed_type_answers_a_search(client, capability):
    types = [r["type"] for r in capability["rest"][0]["resource"]]
    assert "Patient" in types and "Observation" in types
    bad = []
    for rtype in types:
        r = await client.get(f"/{rtype}", params={"_count": "1"})
        if r.status_code != 200 or r.json().get("type") != "searchset":
            bad.append((rtype, r.status_code))
    assert not bad, bad


@pytest.mark.parametrize(
    "rtype",
    [
        "Patient",
        "Observation",
        "Encounter",
        "Practitioner",
        "Organization",
        "Condition",
        "CarePlan",
    ],
)
async def test_every_listed_search_param_is_accepted(client, capability, rtype):
    params = resource_entry(capability, rtype).get("searchParam", [])
    assert params
    if rtype == "Patient":
        names = {p["name"] for p in params}
        assert {
            "_id",
            "_lastUpdated",
            "identifier",
            "name",
            "family",
            "given",
            "birthdate",
            "gender",
            "address-city",
        } <= names
    rejected = []
    for p in params:
        value = VALUES.get(p["type"])
        if value is None:  # composite / special: no generic valid value
            continue
        r = await client.get(f"/{rtype}", params={p["name"]: value})
        if r.status_code != 200:
            rejected.append((p["name"], p["type"], r.status_code, r.text[:200]))
    assert not rejected, rejected
