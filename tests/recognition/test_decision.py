"""The receiving doctor's decision on an earlier result (cn-recognition-decision), through the
API on SQLite and PostgreSQL: accepted, or repeated for each reason the 2022 measures allow;
each broken rule a 422 (or 403) located at its element with nothing written; decisions found
and counted per hospital, outcome and reason."""

from __future__ import annotations

from typing import Any

import httpx

from tests.policy.builders import patient, post
from tests.policy.test_recognition import HBA1C, Town, observation
from tests.recognition.decisions import OUTCOME, REASON, REASONS, decision


async def doctor(client: httpx.AsyncClient, org: str) -> str:
    made = await post(client, {"resourceType": "Practitioner", "name": [{"text": "接诊医生"}]})
    role = await post(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{made['id']}"},
            "organization": {"reference": org},
        },
    )
    return f"PractitionerRole/{role['id']}"


async def count(client: httpx.AsyncClient, **params: str) -> int:
    r = await client.get("/Task", params={**params, "_summary": "count"})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def issues(r: httpx.Response) -> list[tuple[str, str]]:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    return [
        (i.get("expression", [""])[0], (i.get("details") or {}).get("coding", [{}])[0].get("code"))
        for i in body["issue"]
        if i["severity"] == "error"
    ]


async def test_accepted_and_every_reason_are_stored_and_counted_per_hospital(
    client: httpx.AsyncClient,
) -> None:
    town = await Town().make(client)
    city = town.results["city"]
    result = f"Observation/{city['id']}"
    district_doctor = await doctor(client, town.district)
    community_doctor = await doctor(client, town.community)
    made = [await post(client, decision(result, town.patient, town.community, community_doctor))]
    for why in REASONS:
        text = "患者要求进一步复查，" * 20 if why == "other" else None  # exactly 200 characters
        body = decision(result, town.patient, town.district, district_doctor, "repeated", why, text)
        made.append(await post(client, body))
    assert made[-1]["statusReason"]["text"] == "患者要求进一步复查，" * 20
    assert all(m["status"] == "completed" for m in made)
    # the region counts per hospital and outcome, and per reason
    accepted, repeated = f"{OUTCOME}|accepted", f"{OUTCOME}|repeated"
    assert await count(client, **{"business-status": accepted, "owner": town.community}) == 1
    assert await count(client, **{"business-status": accepted, "owner": town.district}) == 0
    assert await count(client, **{"business-status": repeated, "owner": town.district}) == 6
    assert await count(client, **{"business-status": f"{OUTCOME}|"}) == 7
    for why in REASONS:
        assert await count(client, **{"status-reason": f"{REASON}|{why}"}) == 1, why
    # by result and period
    assert await count(client, focus=result, **{"authored-on": "ge2026-05-15"}) == 7
    assert await count(client, focus=result, **{"authored-on": "lt2026-05-15"}) == 0
    # the decisions about a result are found from it
    r = await client.get("/Observation", params={"_id": city["id"], "_revinclude": "Task:focus"})
    assert len(r.json()["entry"]) == 8


async def rejected(client: httpx.AsyncClient, body: dict[str, Any], status: int = 422) -> list:
    r = await client.post("/Task", json=body)
    assert r.status_code == status, r.text
    return issues(r)


async def test_each_profile_rule_is_a_located_422_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    town = await Town().make(client)
    result = f"Observation/{town.results['city']['id']}"
    doc = await doctor(client, town.district)

    def d(**kw: Any) -> dict[str, Any]:
        return decision(result, town.patient, town.district, doc, **kw)

    # repeated without a reason, accepted with one (cnrd-1)
    r = await client.post("/Task", json=d(outcome="repeated"))
    assert r.status_code == 422 and [e for e, _ in issues(r)] == ["Task"], r.text
    assert "cnrd-1" in r.text
    found = await rejected(client, d(outcome="accepted", reason="emergency"))
    assert [e for e, _ in found] == ["Task"]
    # 'other' without its explanation (cnrd-2)
    r = await client.post("/Task", json=d(outcome="repeated", reason="other"))
    assert r.status_code == 422 and [e for e, _ in issues(r)] == ["Task"], r.text
    assert "cnrd-2" in r.text
    # 201 characters: over the limit, located at the text
    r = await client.post("/Task", json=d(outcome="repeated", reason="other", text="复" * 201))
    assert r.status_code == 422, r.text
    assert [e for e, _ in issues(r)] == ["Task.statusReason.text"]
    assert "201" in r.text and "200" in r.text
    # a reason the measures do not list
    found = await rejected(client, d(outcome="repeated", reason="patient-insisted"))
    assert "Task.statusReason" in [e for e, _ in found]
    # an outcome that is neither
    found = await rejected(client, d(outcome="maybe"))
    assert "Task.businessStatus" in [e for e, _ in found]
    # not yet decided (cnrd-3), no doctor, no institution, not a result
    found = await rejected(client, d(status="requested"))
    assert [e for e, _ in found] == ["Task"]
    no_doctor = d()
    del no_doctor["requester"]
    assert [e for e, _ in await rejected(client, no_doctor)] == ["Task.requester"]
    no_owner = d()
    del no_owner["owner"]
    assert [e for e, _ in await rejected(client, no_owner)] == ["Task.owner"]
    found = await rejected(client, d(focus={"reference": "ServiceRequest/x"}))
    assert [e for e, _ in found] == ["Task.focus"]
    # in a transaction: located in the entry, the whole Bundle refused
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Task"}, "resource": d()},
            {
                "request": {"method": "POST", "url": "Task"},
                "resource": d(outcome="repeated", reason="other", text="复" * 201),
            },
        ],
    }
    r = await client.post("/", json=bundle)
    assert r.status_code == 422, r.text
    assert [e for e, _ in issues(r)] == ["Bundle.entry[1].resource.statusReason.text"]
    assert await count(client) == 0  # nothing written by any of these


async def test_the_gateway_rules_on_a_decision(client: httpx.AsyncClient) -> None:
    town = await Town().make(client)
    result = f"Observation/{town.results['city']['id']}"
    doc = await doctor(client, town.district)
    # a result the gateway does not hold
    body = decision("Observation/nope", town.patient, town.district, doc)
    r = await client.post("/Task", json=body)
    assert r.status_code == 422 and issues(r) == [("Task.focus", "POL-2410")], r.text
    # another patient's result
    other = await patient(client)
    r = await client.post("/Task", json=decision(result, other, town.district, doc))
    assert r.status_code == 422 and issues(r) == [("Task.for", "POL-2411")], r.text
    # a DiagnosticReport of the patient is a result too
    report = await post(
        client,
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": HBA1C}]},
            "subject": {"reference": town.patient},
            "effectiveDateTime": "2026-05-01",
            "performer": [{"reference": town.city}],
        },
    )
    body = decision(f"DiagnosticReport/{report['id']}", town.patient, town.district, doc)
    assert (await client.post("/Task", json=body)).status_code == 201
    assert await count(client) == 1


async def test_tasks_without_our_marks_are_not_held_to_the_profile(
    client: httpx.AsyncClient,
) -> None:
    """Interoperable by default: a Task with another business status (or none) is judged by
    R4 alone; claiming the profile applies it whatever the marks."""
    plain = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "businessStatus": {"text": "waiting"},
    }
    assert (await client.post("/Task", json=plain)).status_code == 201
    claimed = {
        **plain,
        "meta": {"profile": ["https://fhir.jtys.cn/StructureDefinition/cn-recognition-decision"]},
    }
    r = await client.post("/Task", json=claimed)
    assert r.status_code == 422, r.text
    found = {e for e, _ in issues(r)}
    assert {"Task.businessStatus", "Task.focus", "Task.for", "Task.owner"} <= found
    # an unmarked result of a test off the list is just an Observation
    town = await Town().make(client)
    obs = observation(town.patient, "99999-9", "2026-05-01", town.city)
    assert (await client.post("/Observation", json=obs)).status_code == 201
