"""Two-way referrals through the API, on SQLite and PostgreSQL: priorities from the contract,
routing down to the contract's team, the Task's workflow, reserved slots and bookings, long
prescriptions."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.policy.builders import (
    BASE,
    CATEGORY,
    Region,
    code_of,
    coding,
    contract,
    ext,
    issue_text,
    organization,
    patient,
    post,
)

_n = itertools.count(1)


def referral(subject: str, requester: str, performer: str | None, direction: str = "up", **extra):
    body = {
        "resourceType": "ServiceRequest",
        "extension": [
            ext("cn-referral-direction", valueCoding=coding("referral-direction", direction))
        ],
        "identifier": [{"system": f"{BASE}/sid/referral", "value": f"ZZ{next(_n):08d}"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY, "code": "referral"}]}],
        "priority": "routine",
        "subject": {"reference": subject},
        "authoredOn": "2026-03-01T09:00:00+08:00",
        "requester": {"reference": requester},
        "reasonCode": [{"coding": [coding("referral-reason", "beyond-capacity")]}],
    }
    if performer:
        body["performer"] = [{"reference": performer}]
    body.update(extra)
    return body


def priorities(resource: dict) -> set[str]:
    return {
        e["valueCoding"]["code"]
        for e in resource.get("extension", [])
        if e["url"] == f"{BASE}/StructureDefinition/cn-referral-priority"
    }


async def task_of(client, referral_id: str) -> dict:
    found = (await client.get("/Task", params={"focus": f"ServiceRequest/{referral_id}"})).json()
    assert found["total"] == 1, found
    return found["entry"][0]["resource"]


async def contracted(client, where: str = "guangzhou") -> tuple[Region, str]:
    region = await Region.make(client, where)
    resident = await patient(client)
    await post(client, contract(resident, region))
    return region, resident


# --- up ---------------------------------------------------------------------------------
async def test_up_referral_of_a_contracted_resident_gets_priorities_and_a_task(client):
    region, resident = await contracted(client)
    hospital = await organization(client, "guangzhou")
    made = await post(client, referral(resident, region.doctor, hospital))
    assert priorities(made) == {"expert-appointment", "examination", "admission"}
    task = await task_of(client, made["id"])
    assert task["status"] == "requested"
    assert task["businessStatus"]["coding"][0]["code"] == "submitted"
    assert task["owner"]["reference"] == hospital
    assert task["for"]["reference"] == resident


async def test_up_referral_without_a_contract_goes_through_without_priorities(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    hospital = await organization(client, "guangzhou")
    made = await post(client, referral(resident, region.doctor, hospital))
    assert priorities(made) == set()
    claimed = referral(resident, region.doctor, hospital)
    claimed["extension"].append(ext("cn-green-channel", valueBoolean=True))
    r = await client.post("/ServiceRequest", json=claimed)
    assert r.status_code == 422 and code_of(r) == "POL-2301", r.text


# --- down -------------------------------------------------------------------------------
async def test_down_referral_is_routed_to_the_contract_team(client):
    region, resident = await contracted(client)
    hospital_doctor = await organization(client, "guangzhou")
    made = await post(client, referral(resident, hospital_doctor, None, direction="down"))
    assert made["performer"] == [{"reference": region.doctor}]
    assert (await task_of(client, made["id"]))["owner"]["reference"] == region.org


async def test_down_referral_without_a_contract_is_refused(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    r = await client.post("/ServiceRequest", json=referral(resident, region.org, None, "down"))
    assert r.status_code == 422 and code_of(r) == "POL-2302", r.text
    assert "no family-doctor contract in force" in issue_text(r)


async def test_down_referral_follows_a_contract_changed_since_the_up_referral(client):
    first, resident = await contracted(client)
    hospital = await organization(client, "guangzhou")
    await post(client, referral(resident, first.doctor, hospital))
    old = (await client.get("/CarePlan", params={"subject": resident})).json()["entry"][0]
    ended = old["resource"]
    ended["status"] = "revoked"
    ended["extension"] += [
        ext("cn-termination-reason", valueCoding=coding("termination-reason", "switched")),
        ext("cn-termination-date", valueDate="2026-02-28"),
    ]
    assert (await client.put(f"/CarePlan/{ended['id']}", json=ended)).status_code == 200
    second = await Region.make(client, "guangzhou")
    await post(
        client,
        contract(resident, second, start="2026-03-01", end="2027-02-28", sign_type="switch"),
    )
    down = await post(client, referral(resident, hospital, None, direction="down"))
    assert down["performer"] == [{"reference": second.doctor}]
    # naming the old team is refused
    r = await client.post(
        "/ServiceRequest", json=referral(resident, hospital, first.doctor, direction="down")
    )
    assert r.status_code == 422 and code_of(r) == "POL-2304", r.text


@pytest.mark.parametrize(("where", "status"), [("guangzhou", 422), ("guandu", 201)])
async def test_green_channel_down_where_the_region_allows_it(client, where, status):
    region, resident = await contracted(client, where)
    hospital = await organization(client, where)
    body = referral(resident, hospital, None, direction="down")
    body["extension"].append(ext("cn-green-channel", valueBoolean=True))
    r = await client.post("/ServiceRequest", json=body)
    assert r.status_code == status, r.text


# --- the Task's workflow -----------------------------------------------------------------
def step(task: dict, status: str, business: str) -> dict:
    task = dict(task)
    task["status"] = status
    task["businessStatus"] = {
        "coding": [{"system": f"{BASE}/CodeSystem/referral-status", "code": business}]
    }
    return task


async def test_task_moves_only_along_the_workflow(client):
    region, resident = await contracted(client)
    hospital = await organization(client, "guangzhou")
    made = await post(client, referral(resident, region.doctor, hospital))
    task = await task_of(client, made["id"])
    r = await client.put(f"/Task/{task['id']}", json=step(task, "completed", "completed"))
    assert r.status_code == 422 and code_of(r) == "POL-2312", r.text
    assert "received, accepted, rejected, cancelled" in issue_text(r)
    for status, business in [
        ("accepted", "accepted"),
        ("accepted", "appointment-booked"),
        ("in-progress", "arrived"),
        ("completed", "referred-down"),
    ]:
        r = await client.put(f"/Task/{task['id']}", json=step(task, status, business))
        assert r.status_code == 200, (status, r.text)
        task = r.json()
    r = await client.put(f"/Task/{task['id']}", json=step(task, "in-progress", "arrived"))
    assert r.status_code == 422 and "none (the referral is closed)" not in issue_text(r)


async def test_business_status_must_fit_the_status(client):
    region, resident = await contracted(client)
    hospital = await organization(client, "guangzhou")
    made = await post(client, referral(resident, region.doctor, hospital))
    task = await task_of(client, made["id"])
    r = await client.put(f"/Task/{task['id']}", json=step(task, "accepted", "declined"))
    assert r.status_code == 422, r.text
    assert "declined" in issue_text(r)


# --- reserved slots and bookings ---------------------------------------------------------
async def schedule(client, hospital: str, kind: str) -> str:
    clinic = await post(
        client,
        {
            "resourceType": "Location",
            "name": "专家门诊",
            "managingOrganization": {"reference": hospital},
        },
    )
    made = await post(
        client,
        {
            "resourceType": "Schedule",
            "serviceCategory": [{"coding": [coding("reserved-resource", kind)]}],
            "actor": [{"reference": f"Location/{clinic['id']}"}],
        },
    )
    return f"Schedule/{made['id']}"


async def slots(client, schedule_ref: str, kind: str, n: int) -> list[dict]:
    entries = [
        {
            "resource": {
                "resourceType": "Slot",
                "schedule": {"reference": schedule_ref},
                "serviceCategory": [{"coding": [coding("reserved-resource", kind)]}],
                "status": "free",
                "start": f"2026-04-01T{8 + i // 2:02d}:{(i % 2) * 30:02d}:00+08:00",
                "end": f"2026-04-01T{8 + i // 2:02d}:{(i % 2) * 30 + 29:02d}:00+08:00",
            },
            "request": {"method": "POST", "url": "Slot"},
        }
        for i in range(n)
    ]
    r = await client.post(
        "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert r.status_code == 200, r.text
    found = await client.get("/Slot", params={"schedule": schedule_ref, "_count": 100})
    return [e["resource"] for e in found.json()["entry"]]


def reserved(slot: dict) -> bool:
    return any(e["url"].endswith("cn-slot-reservation") for e in slot.get("extension", []))


def appointment(resident: str, slot: dict, based_on: str | None = None, status: str = "booked"):
    body = {
        "resourceType": "Appointment",
        "status": status,
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "participant": [{"actor": {"reference": resident}, "status": "accepted"}],
    }
    if based_on:
        body["basedOn"] = [{"reference": based_on}]
    return body


@pytest.mark.parametrize(
    ("where", "kind", "share"), [("guangzhou", "expert", 2), ("xinjiang", "outpatient", 5)]
)
async def test_slots_are_reserved_in_the_regions_share(client, where, kind, share):
    hospital = await organization(client, where)
    made = await slots(client, await schedule(client, hospital, kind), kind, 10)
    assert sum(reserved(s) for s in made) == share


async def test_a_reserved_slot_is_for_an_accepted_up_referral(client):
    region, resident = await contracted(client)
    hospital = await organization(client, "guangzhou")
    made = await slots(client, await schedule(client, hospital, "expert"), "expert", 5)
    slot = next(s for s in made if reserved(s))
    r = await client.post("/Appointment", json=appointment(resident, slot))
    assert r.status_code == 409 and code_of(r) == "POL-2323", r.text
    ref = await post(client, referral(resident, region.doctor, hospital))
    based = f"ServiceRequest/{ref['id']}"
    r = await client.post("/Appointment", json=appointment(resident, slot, based))
    assert r.status_code == 409, r.text  # not accepted yet
    task = await task_of(client, ref["id"])
    assert (
        await client.put(f"/Task/{task['id']}", json=step(task, "accepted", "accepted"))
    ).status_code == 200
    booked = await post(client, appointment(resident, slot, based))
    assert (await client.get(f"/Slot/{slot['id']}")).json()["status"] == "busy"
    # no double booking
    other = await patient(client)
    r = await client.post("/Appointment", json=appointment(other, slot, based))
    assert r.status_code == 409 and code_of(r) == "POL-2321", r.text
    # a cancelled booking frees the slot
    booked["status"] = "cancelled"
    assert (await client.put(f"/Appointment/{booked['id']}", json=booked)).status_code == 200
    assert (await client.get(f"/Slot/{slot['id']}")).json()["status"] == "free"


async def test_fifty_bookings_for_ten_slots(client, app):
    if app.state.core.store.engine.dialect.name != "postgresql":
        pytest.skip("concurrency is PostgreSQL's (SQLite writers are serial)")
    hospital = await organization(client, "guangzhou")
    made = await slots(client, await schedule(client, hospital, "outpatient"), "outpatient", 10)
    assert not any(reserved(s) for s in made)  # Guangzhou reserves expert slots only
    residents = [await patient(client) for _ in range(50)]
    replies = await asyncio.gather(
        *(
            client.post("/Appointment", json=appointment(r, made[i % 10]))
            for i, r in enumerate(residents)
        )
    )
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] * 10 + [409] * 40, statuses
    booked = await client.get("/Appointment", params={"status": "booked", "_count": 100})
    assert booked.json()["total"] == 10


# --- long prescriptions ------------------------------------------------------------------
def prescription(subject: str, requester: str, value: int, unit: str, repeats: int = 0):
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY, "code": "long-prescription"}]}],
        "medicationCodeableConcept": {"text": "苯磺酸氨氯地平片 5mg"},
        "subject": {"reference": subject},
        "authoredOn": "2026-03-01",
        "requester": {"reference": requester},
        "dispenseRequest": {
            "numberOfRepeatsAllowed": repeats,
            "expectedSupplyDuration": {
                "value": value,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            },
        },
    }


@pytest.mark.parametrize(
    ("where", "value", "unit", "repeats", "status"),
    [
        ("guangzhou", 60, "d", 0, 201),
        ("guangzhou", 30, "d", 1, 201),
        ("guangzhou", 30, "d", 2, 422),  # 90 days > 60
        ("xinjiang", 12, "wk", 0, 201),
        ("xinjiang", 13, "wk", 0, 422),  # > 12 weeks
    ],
)
async def test_long_prescription_limits(client, where, value, unit, repeats, status):
    region, resident = await contracted(client, where)
    r = await client.post(
        "/MedicationRequest", json=prescription(resident, region.doctor, value, unit, repeats)
    )
    assert r.status_code == status, r.text
    if status == 422:
        assert code_of(r) == "POL-2332" and f"{where}.yaml" in issue_text(r)


async def test_long_prescription_needs_a_contract(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    r = await client.post("/MedicationRequest", json=prescription(resident, region.doctor, 30, "d"))
    assert r.status_code == 422 and code_of(r) == "POL-2331", r.text
