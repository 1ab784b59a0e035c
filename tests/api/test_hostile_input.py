"""Hostile and absurd input, on SQLite and PostgreSQL alike: a 4xx OperationOutcome that says
where, a bounded answer, and nothing written."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.fhir.parse import MAX_OBJECTS, MAX_VALUES
from gateway.validation.validator import MAX_ISSUES
from tests.api.test_crud import PATIENT, create


def assert_outcome(r, status: int, expression: str | None = None) -> dict:
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if expression is not None:
        where = [e for i in outcome["issue"] for e in i.get("expression", [])]
        assert expression in where, outcome
    return outcome


async def count(client, rtype: str = "Patient") -> int:
    r = await client.get(f"/{rtype}", params={"_summary": "count"})
    assert r.status_code == 200, r.text
    return r.json()["total"]


# --- NUL characters: PostgreSQL's text cannot hold one, so no stored value has one ----------
@pytest.mark.parametrize(
    "query",
    [
        "name=%00",
        "name=a%00b",
        "identifier=urn:oid:1%7Ca%00b",
        "_id=a%00",
        "general-practitioner=Practitioner/a%00",
        "address-city:exact=%E5%B9%BF%00",
        "birthdate=1990%00",
        "_has:Observation:patient:code=a%00",
    ],
)
async def test_nul_in_a_search_parameter_is_a_400(client, query):
    name = query.split("=", 1)[0].split(":")[0]
    r = await client.get(f"/Patient?{query}")
    outcome = assert_outcome(r, 400)
    assert any(name in e for i in outcome["issue"] for e in i.get("expression", [])), outcome


async def test_nul_in_a_parameter_name_is_a_400(client):
    assert_outcome(await client.get("/Patient?na%00me=x"), 400)


async def test_nul_in_if_none_exist_is_a_400_and_creates_nothing(client):
    r = await client.post("/Patient", json=PATIENT, headers={"If-None-Exist": "identifier=a%00b"})
    assert_outcome(r, 400)
    assert await count(client) == 0


async def test_nul_in_a_conditional_delete_or_update_is_a_400(client):
    await create(client)
    assert_outcome(await client.delete("/Patient?identifier=a%00b"), 400)
    assert_outcome(await client.put("/Patient?identifier=a%00b", json=PATIENT), 400)
    assert await count(client) == 1


async def test_nul_in_a_transactions_conditional_reference_is_a_400_and_all_or_nothing(client):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "体重"},
                    "subject": {"reference": "Patient?identifier=a%00b"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    assert_outcome(await client.post("", json=bundle), 400)
    assert await count(client) == 0


async def test_a_cursor_holding_a_nul_is_a_400(client):
    for _ in range(3):
        await create(client)
    first = (await client.get("/Patient", params={"_count": 1, "_sort": "name"})).json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    token = following.split("_cursor=")[1].split("&")[0]
    padded = token + "=" * (-len(token) % 4)
    state = orjson.loads(base64.urlsafe_b64decode(padded))
    texts = [i for i, v in enumerate(state["v"]) if isinstance(v, str)]
    assert texts, state  # sorted by name: the cursor carries the last name seen
    # A NUL in a text the cursor carries, the cursor well-formed otherwise.
    state["v"][texts[0]] += "\u0000"
    forged = base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
    r = await client.get(following.replace(token, forged).split("/fhir", 1)[1])
    assert_outcome(r, 400, "_cursor")


async def test_nul_in_a_resource_is_refused(client):
    body = {**PATIENT, "name": [{"text": "张\u0000三"}]}
    r = await client.post("/Patient", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert await count(client) == 0


# --- bounded work and answers -------------------------------------------------------------
async def test_a_flood_of_errors_is_cut_at_the_limit(client):
    body = {"resourceType": "Patient", "name": [{} for _ in range(MAX_ISSUES * 3)]}
    r = await client.post("/Patient", json=body)
    assert r.status_code in (400, 422), r.text[:500]
    issues = r.json()["issue"]
    assert MAX_ISSUES < len(issues) <= MAX_ISSUES + 2
    codes = [c["code"] for i in issues for c in i.get("details", {}).get("coding", [])]
    assert "VAL-1114" in codes
    assert len(r.content) < 2_000_000
    assert await count(client) == 0


async def test_a_body_of_too_many_json_objects_is_a_413_before_validation(client):
    # 3 bytes per object: a small body that would otherwise cost gigabytes as Python objects.
    body = b'{"resourceType":"Patient","name":[' + b",".join([b"{}"] * MAX_OBJECTS) + b"]}"
    assert len(body) < 4 * MAX_OBJECTS
    r = await client.post("/Patient", content=body)
    outcome = assert_outcome(r, 413)
    assert "GW-1035" in orjson.dumps(outcome).decode()
    assert await count(client) == 0


async def test_after_hostile_input_the_server_still_serves(client):
    await client.get("/Patient?name=%00")
    await client.post("/Patient", content=b"{" * 100_000)
    r = await create(client)
    assert (await client.get(r.headers["location"].split("/fhir", 1)[1])).status_code == 200


async def test_a_body_of_too_many_json_values_is_a_413(client):
    body = (
        b'{"resourceType":"Patient","name":[{"given":[' + b",".join([b"1"] * MAX_VALUES) + b"]}]}"
    )
    assert_outcome(await client.post("/Patient", content=body), 413)
