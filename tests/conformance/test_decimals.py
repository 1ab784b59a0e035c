"""Decimal precision (R4 json.html: "the precision of decimal values must be maintained";
datatypes.html decimal: "The precision of the decimal value has significance: e.g. 0.010 is
regarded as different to 0.01")."""

from __future__ import annotations

import re

from ._helpers import create

EXACT = [
    "1.50",
    "0.010",
    "100.00",
    "1E+2",
    "1e2",
    "0.0000001",
    "3.14159265358979323846264338327950288",
    "123456789012345678901234567890",  # beyond 64 bits: kept, not a 500
    "-0.0",
    "0e999999999",  # exact, even where no float can hold the range for the index
]


def observation(value: str) -> bytes:
    return (
        '{"resourceType":"Observation","status":"final","code":{"text":"体重"},'
        f'"valueQuantity":{{"value":{value},"unit":"kg","system":"http://unitsofmeasure.org",'
        '"code":"kg"}}'
    ).encode()


def raw_value(body: bytes) -> str:
    m = re.search(rb'"value"\s*:\s*([-0-9.eE+]+)', body)
    assert m, body
    return m.group(1).decode()


async def test_decimals_are_stored_and_served_as_written(client):
    for value in EXACT:
        r = await client.post("/Observation", content=observation(value))
        assert r.status_code == 201, r.text
        oid = r.json()["id"]
        for url, params in [
            (f"/Observation/{oid}", {}),
            (f"/Observation/{oid}/_history/1", {}),
            (f"/Observation/{oid}", {"_pretty": "true"}),
            (f"/Observation/{oid}", {"_elements": "value"}),
            ("/Observation", {"_id": oid}),
        ]:
            got = await client.get(url, params=params)
            assert raw_value(got.content) == value, (url, params)


async def test_decimals_survive_patch_and_transactions(client):
    r = await client.post("/Observation", content=observation("1.50"))
    oid = r.json()["id"]
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    r = await client.patch(
        f"/Observation/{oid}",
        json=patch,
        headers={"content-type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert raw_value((await client.get(f"/Observation/{oid}")).content) == "1.50"

    bundle = (
        '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST",'
        '"url":"Observation"},"resource":' + observation("0.010").decode() + "}]}"
    )
    r = await client.post("", content=bundle.encode())
    assert r.status_code == 200, r.text
    location = r.json()["entry"][0]["response"]["location"]
    oid = location.split("Observation/")[1].split("/")[0]
    assert raw_value((await client.get(f"/Observation/{oid}")).content) == "0.010"


async def test_decimal_values_are_searchable(client):
    # search.html (number): the search value's precision sets its range: "1.50" is
    # [1.495, 1.505), "1.5" is [1.45, 1.55).
    r = await client.post("/Observation", content=observation("1.50"))
    oid = r.json()["id"]
    await create(client, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    for query, hit in [
        ("1.5", True),
        ("1.50", True),
        ("1.504", False),
        ("1.51", False),
        ("gt1.4", True),
    ]:
        found = (await client.get("/Observation", params={"value-quantity": query})).json()
        ids = [e["resource"]["id"] for e in found.get("entry", [])]
        assert (oid in ids) == hit, query


async def test_patch_as_binary_keeps_decimals(client):
    import base64
    import json

    r = await client.post("/Observation", content=observation("2.0"))
    oid = r.json()["id"]
    patch = '[{"op":"replace","path":"/valueQuantity/value","value":1.50}]'
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "PATCH", "url": f"Observation/{oid}"},
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": base64.b64encode(patch.encode()).decode(),
                },
            }
        ],
    }
    r = await client.post("", content=json.dumps(bundle).encode())
    assert r.status_code == 200, r.text
    assert raw_value((await client.get(f"/Observation/{oid}")).content) == "1.50"


async def test_numbers_beyond_any_float_are_client_errors_in_searches(client):
    for query in ["0e999999999", "sa1e999999999", "1e400", "\u0661\u0660\u0660", "1_00", ".5"]:
        r = await client.get("/Observation", params={"value-quantity": query})
        assert r.status_code == 400, (query, r.text)
    r = await client.get("/Patient", params={"birthdate": "\uff12\uff10\uff11\uff15"})
    assert r.status_code == 400
