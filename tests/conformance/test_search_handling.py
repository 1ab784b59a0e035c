"""R4 search.html "Handling Errors": unknown or unsupported parameters are ignored by default
and reported; `Prefer: handling=strict|lenient` chooses per request; a setting makes strict
the deployment's default."""

from __future__ import annotations

import pytest

from tests.conformance._helpers import create, patient
from tests.conftest import client_for, running_app


def _outcome(bundle: dict) -> list[dict]:
    return [
        issue
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "outcome"
        for issue in e["resource"]["issue"]
    ]


def _self(bundle: dict) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == "self")


async def test_unknown_parameter_is_ignored_reported_and_left_out_of_self(client):
    mine = await create(client, patient("handling-1", gender="female"))
    await create(client, patient("handling-2", gender="male"))
    r = await client.get("/Patient", params={"gender": "female", "colour": "red"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [
        mine["id"]
    ]
    issues = _outcome(bundle)
    assert [(i["severity"], i["code"], i["expression"]) for i in issues] == [
        ("warning", "not-supported", ["colour"])
    ]
    assert "colour" not in _self(bundle) and "gender=female" in _self(bundle)


async def test_fhirpy_count_query_is_answered(client):
    """fhirpy's count() sends `_count=0&_totalMethod=count` (_totalMethod is not R4)."""
    await create(client, patient("handling-3"))
    r = await client.get("/Patient", params={"_count": "0", "_totalMethod": "count"})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1


async def test_strict_preference_refuses_unknown_parameters(client):
    r = await client.get(
        "/Patient", params={"colour": "red"}, headers={"Prefer": "handling=strict"}
    )
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["colour"]


@pytest.mark.parametrize("prefer", [None, "handling=strict"])
async def test_a_malformed_value_of_a_known_parameter_is_still_400(client, prefer):
    headers = {"Prefer": prefer} if prefer else {}
    r = await client.get("/Patient", params={"birthdate": "not-a-date"}, headers=headers)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["birthdate"]


async def test_lenient_preference_also_ignores_malformed_values(client):
    await create(client, patient("handling-4"))
    r = await client.get(
        "/Patient", params={"birthdate": "not-a-date"}, headers={"Prefer": "handling=lenient"}
    )
    assert r.status_code == 200 and r.json()["total"] == 1
    assert _outcome(r.json())[0]["expression"] == ["birthdate"]


async def test_conditional_operations_stay_strict(client):
    """An ignored parameter would widen a conditional match: it is refused instead."""
    r = await client.delete("/Patient", params={"colour": "red"})
    assert r.status_code == 400
    r = await client.post(
        "/Patient", json=patient("handling-5"), headers={"If-None-Exist": "colour=red"}
    )
    assert r.status_code == 400


async def test_a_deployment_may_make_strict_the_default(database_url):
    async with running_app(database_url, search_handling="strict") as app:
        async with client_for(app) as client:
            r = await client.get("/Patient", params={"colour": "red"})
            assert r.status_code == 400
            r = await client.get(
                "/Patient", params={"colour": "red"}, headers={"Prefer": "handling=lenient"}
            )
            assert r.status_code == 200
            assert _outcome(r.json())[0]["expression"] == ["colour"]
