"""Races that break other FHIR servers: parallel conditional creates, parallel writes."""

from __future__ import annotations

import asyncio

from tests.api.test_crud import PATIENT


async def test_parallel_conditional_creates_yield_one_resource(client):
    cond = "identifier=urn:oid:2.16.156.10011.1.3|440104199001011232"
    results = await asyncio.gather(
        *(client.post("/Patient", json=PATIENT, headers={"If-None-Exist": cond}) for _ in range(20))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1, codes
    assert all(c in (200, 201) for c in codes), codes
    ids = {r.json()["id"] for r in results}
    assert len(ids) == 1
    found = await client.get("/Patient", params={"identifier": cond.split("=", 1)[1]})
    assert found.json()["total"] == 1


async def test_parallel_transactions_with_conditional_create_yield_one_resource(client):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8f6c4c37-5a0f-4a8b-9d6e-0b1c2d3e4f50",
                "resource": PATIENT,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": "identifier=urn:oid:2.16.156.10011.1.3|440104199001011232",
                },
            }
        ],
    }
    results = await asyncio.gather(*(client.post("", json=bundle) for _ in range(20)))
    assert all(r.status_code == 200 for r in results), [
        r.text for r in results if r.status_code != 200
    ]
    statuses = sorted(r.json()["entry"][0]["response"]["status"] for r in results)
    assert statuses.count("201 Created") == 1, statuses
    assert (await client.get("/Patient", params={"_summary": "count"})).json()["total"] == 1


async def test_parallel_puts_to_a_new_id_create_once(client):
    body = {**PATIENT, "id": "race-1"}
    results = await asyncio.gather(*(client.put("/Patient/race-1", json=body) for _ in range(10)))
    codes = [r.status_code for r in results]
    assert codes.count(201) == 1, codes
    assert all(c in (200, 201, 409) for c in codes), codes
    hist = (await client.get("/Patient/race-1/_history")).json()
    assert hist["total"] == codes.count(200) + 1
