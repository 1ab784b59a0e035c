"""A form stored before its items were recoded (mass-concentration LOINC codes on mmol/L and
μmol/L values) is updated, not duplicated, when it is sent again: the measurement's business
key searches the substance-concentration code and the former mass one, on SQLite and
PostgreSQL. What was stored under 1558-6 (fasting glucose, mass) becomes 14771-0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_ingest import count, ingest
from tests.mappings.test_report_mappings import world

ROOT = Path(__file__).resolve().parents[2] / "mappings"
EXAM_SID = "https://fhir.jtys.cn/sid/health-exam"
FOLLOWUP_SID = "https://fhir.jtys.cn/sid/followup"
LOINC = "http://loinc.org"


async def _found(client: httpx.AsyncClient, query: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/Observation", params=query)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _only(client: httpx.AsyncClient, query: dict[str, str]) -> dict[str, Any]:
    found = await _found(client, query)
    assert found["total"] == 1, found
    return dict(found["entry"][0]["resource"])


def _record() -> dict[str, Any]:
    """The JSON form of a health check (its first record) as a health-record system sends it."""
    path = ROOT / "health-exam" / "fixtures" / "aliases-and-json.input.json"
    return dict(json.loads(path.read_text("utf-8"))[0])


async def _as_stored_before(client: httpx.AsyncClient, obs: dict[str, Any], code: str) -> None:
    """The item as an earlier version of the mapping stored it: the mass code."""
    obs["code"]["coding"] = [{"system": LOINC, "code": code}]
    r = await client.put(f"/Observation/{obs['id']}", json=obs)
    assert r.status_code == 200, r.text


async def test_a_health_check_sent_again_recodes_its_items(client: httpx.AsyncClient) -> None:
    w = await world(client)
    record = _record()
    done = await ingest(client, "health-exam", [record])
    assert done["stored"] == 1, done
    number = {"identifier": f"{EXAM_SID}|TJ20260905007"}
    items = await count(client, f"Observation?patient={w['patient']}")
    for new, old in (("14771-0", "1558-6"), ("14682-9", "2160-0"), ("22748-8", "13457-7")):
        stored = await _only(client, {**number, "code": f"{LOINC}|{new}"})
        await _as_stored_before(client, stored, old)
        assert (await _only(client, {**number, "code": f"{LOINC}|{old}"}))["id"] == stored["id"]
    again = await ingest(client, "health-exam", [record])
    assert (again["stored"], again["updated"]) == (0, 1), again
    assert await count(client, f"Observation?patient={w['patient']}") == items
    for new, old in (("14771-0", "1558-6"), ("14682-9", "2160-0"), ("22748-8", "13457-7")):
        assert (await _found(client, {**number, "code": f"{LOINC}|{old}"}))["total"] == 0
        recoded = await _only(client, {**number, "code": f"{LOINC}|{new}"})
        assert recoded["meta"]["profile"] == [
            "https://fhir.jtys.cn/StructureDefinition/cn-record-observation"
        ]


async def test_a_follow_up_sent_again_recodes_its_glucose(client: httpx.AsyncClient) -> None:
    w = await world(client)
    csv = (ROOT / "chronic-followup/fixtures/hypertension-and-diabetes.input.csv").read_text(
        "utf-8"
    )
    header, _, diabetes = csv.splitlines()[:3]
    body = f"{header}\n{diabetes}\n".encode()
    headers = {"content-type": "text/csv; charset=utf-8"}
    params = {"source": "chronic-followup"}
    r = await client.post("/$ingest", params=params, content=body, headers=headers)
    assert r.status_code == 200, r.text
    number = {"identifier": f"{FOLLOWUP_SID}|SF20260410002"}
    glucose = await _only(client, {**number, "code": f"{LOINC}|14771-0"})
    await _as_stored_before(client, glucose, "1558-6")
    r = await client.post("/$ingest", params=params, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert await count(client, f"Observation?patient={w['patient']}") == 3  # weight, glucose, class
    assert (await _only(client, {**number, "code": f"{LOINC}|14771-0"}))["id"] == glucose["id"]
