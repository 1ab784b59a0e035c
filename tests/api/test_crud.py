"""Instance and type interactions, over SQLite and PostgreSQL (R4 §3.1.0)."""

from __future__ import annotations

import asyncio

import pytest

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "440104199001011232"}],
    "name": [{"text": "张三", "family": "张", "given": ["三"]}],
    "gender": "male",
    "birthDate": "1990-01-01",
    "address": [{"city": "广州市", "district": "越秀区"}],
}


async def create(client, resource=PATIENT, **headers):
    r = await client.post(f"/{resource['resourceType']}", json=resource, headers=headers)
    assert r.status_code == 201, r.text
    return r


async def test_create_assigns_id_meta_and_headers(client):
    body = {**PATIENT, "id": "client-chosen"}
    r = await create(client, body)
    res = r.json()
    assert res["id"] != "client-chosen"  # R4: the server ignores a supplied id on create
    assert res["meta"]["versionId"] == "1"
    assert res["meta"]["lastUpdated"].endswith("Z")
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/Patient/{res['id']}/_history/1")
    assert "last-modified" in r.headers
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert res["name"][0]["text"] == "张三"


async def test_read_returns_stored_content_unchanged(client):
    created = (await create(client)).json()
    r = await client.get(f"/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'
    # UTF-8 bytes on the wire, no \u escapes or mojibake.
    assert "张三".encode() in r.content


async def test_read_unknown_is_404_with_outcome(client):
    r = await client.get("/Patient/does-not-exist")
    assert r.status_code == 404
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
    assert body["issue"][0]["details"]["coding"][0]["code"].startswith("GW-")


async def test_unknown_type_is_404(client):
    r = await client.get("/Pateint/1")
    assert r.status_code == 404
    assert r.json()["issue"][0]["code"] == "not-supported"


async def test_update_versions_and_vread(client):
    created = (await create(client)).json()
    pid = created["id"]
    changed = {**created, "gender": "unknown"}
    r = await client.put(f"/Patient/{pid}", json=changed)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    v1 = await client.get(f"/Patient/{pid}/_history/1")
    v2 = await client.get(f"/Patient/{pid}/_history/2")
    assert v1.json()["gender"] == "male" and v2.json()["gender"] == "unknown"
    assert (await client.get(f"/Patient/{pid}/_history/3")).status_code == 404


async def test_update_as_create_with_client_id(client):
    r = await client.put("/Patient/zhang-san-1", json={**PATIENT, "id": "zhang-san-1"})
    assert r.status_code == 201
    assert r.json()["id"] == "zhang-san-1"
    assert r.headers["location"].endswith("/Patient/zhang-san-1/_history/1")


@pytest.mark.parametrize(
    "body_id, expected_expression",
    [(None, "Patient.id"), ("other", "Patient.id")],
)
async def test_update_id_mismatch_is_400(client, body_id, expected_expression):
    body = dict(PATIENT)
    if body_id:
        body["id"] = body_id
    r = await client.put("/Patient/abc", json=body)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == [expected_expression]
    assert (await client.get("/Patient/abc")).status_code == 404  # nothing written


async def test_type_mismatch_is_400(client):
    r = await client.post("/Observation", json=PATIENT)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["resourceType"]


async def test_delete_then_read_is_410_and_history_keeps_versions(client):
    pid = (await create(client)).json()["id"]
    r = await client.delete(f"/Patient/{pid}")
    assert r.status_code == 204
    assert r.headers["etag"] == 'W/"2"'
    r = await client.get(f"/Patient/{pid}")
    assert r.status_code == 410
    assert r.json()["issue"][0]["code"] == "deleted"
    assert (await client.get(f"/Patient/{pid}/_history/1")).status_code == 200
    assert (await client.get(f"/Patient/{pid}/_history/2")).status_code == 410
    # Deleting again or deleting the unknown is not an error (R4 §3.1.0.7.1).
    assert (await client.delete(f"/Patient/{pid}")).status_code == 204
    assert (await client.delete("/Patient/never-existed")).status_code == 204
    # An update after delete brings it back with a new version.
    body = (await client.get(f"/Patient/{pid}/_history/1")).json()
    r = await client.put(f"/Patient/{pid}", json=body)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


async def test_deleted_resource_leaves_search(client):
    pid = (await create(client)).json()["id"]
    assert (await client.get("/Patient", params={"_id": pid})).json()["total"] == 1
    await client.delete(f"/Patient/{pid}")
    assert (await client.get("/Patient", params={"_id": pid})).json()["total"] == 0


async def test_if_match_optimistic_locking(client):
    created = (await create(client)).json()
    pid = created["id"]
    ok = await client.put(f"/Patient/{pid}", json=created, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = await client.put(f"/Patient/{pid}", json=created, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert (await client.get(f"/Patient/{pid}")).json()["meta"]["versionId"] == "2"
    bad = await client.delete(f"/Patient/{pid}", headers={"If-Match": 'W/"1"'})
    assert bad.status_code == 412
    assert (await client.get(f"/Patient/{pid}")).status_code == 200


async def test_if_none_match_and_if_modified_since_give_304(client):
    r = await create(client)
    pid = r.json()["id"]
    nm = await client.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert nm.status_code == 304 and nm.content == b""
    changed = await client.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"0"'})
    assert changed.status_code == 200
    lm = r.headers["last-modified"]
    ims = await client.get(f"/Patient/{pid}", headers={"If-Modified-Since": lm})
    assert ims.status_code == 304
    old = await client.get(
        f"/Patient/{pid}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert old.status_code == 200


@pytest.mark.parametrize(
    "prefer, has_body, kind",
    [
        ("return=minimal", False, None),
        ("return=representation", True, "Patient"),
        ("return=OperationOutcome", True, "OperationOutcome"),
    ],
)
async def test_prefer_return(client, prefer, has_body, kind):
    r = await client.post("/Patient", json=PATIENT, headers={"Prefer": prefer})
    assert r.status_code == 201
    assert bool(r.content) == has_body
    if kind:
        assert r.json()["resourceType"] == kind
    assert r.headers["location"]


async def test_format_and_pretty(client):
    pid = (await create(client)).json()["id"]
    pretty = await client.get(f"/Patient/{pid}", params={"_pretty": "true"})
    assert b"\n  " in pretty.content
    assert pretty.json() == (await client.get(f"/Patient/{pid}")).json()
    assert (await client.get(f"/Patient/{pid}", params={"_format": "json"})).status_code == 200
    xml = await client.get(f"/Patient/{pid}", params={"_format": "xml"})
    assert xml.status_code == 406
    assert xml.json()["resourceType"] == "OperationOutcome"


async def test_patch_json_patch(client):
    pid = (await create(client)).json()["id"]
    ops = [
        {"op": "replace", "path": "/gender", "value": "unknown"},
        {"op": "add", "path": "/telecom", "value": [{"system": "phone", "value": "13800138000"}]},
    ]
    r = await client.patch(
        f"/Patient/{pid}",
        json=ops,
        headers={"content-type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gender"] == "unknown" and body["telecom"][0]["value"] == "13800138000"
    assert body["meta"]["versionId"] == "2"
    bad = await client.patch(
        f"/Patient/{pid}",
        json=[{"op": "replace", "path": "/gender", "value": 42}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert bad.status_code == 400  # the patched result must still be a valid resource
    assert bad.json()["issue"][0]["expression"] == ["Patient.gender"]
    stale = await client.patch(
        f"/Patient/{pid}",
        json=ops,
        headers={"content-type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    failing = await client.patch(
        f"/Patient/{pid}",
        json=[{"op": "remove", "path": "/nope"}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert failing.status_code == 422


async def test_conditional_create(client):
    cond = "identifier=urn:oid:2.16.156.10011.1.3|440104199001011232"
    first = await client.post("/Patient", json=PATIENT, headers={"If-None-Exist": cond})
    assert first.status_code == 201
    again = await client.post("/Patient", json=PATIENT, headers={"If-None-Exist": cond})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    await create(client)  # now two match
    many = await client.post("/Patient", json=PATIENT, headers={"If-None-Exist": cond})
    assert many.status_code == 412


async def test_conditional_create_from_the_query_string(client):
    """POST /Patient?identifier=… (fhirpy's get_or_create): the query is the condition."""
    q = {"identifier": "urn:oid:2.16.156.10011.1.3|440104199001011232", "_format": "json"}
    first = await client.post("/Patient", params=q, json=PATIENT)
    assert first.status_code == 201
    again = await client.post("/Patient", params=q, json=PATIENT)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    both = await client.post(
        "/Patient", params=q, json=PATIENT, headers={"If-None-Exist": "identifier=other|1"}
    )
    assert both.status_code == 400
    assert both.json()["issue"][0]["details"]["coding"][0]["code"] == "GW-1034"
    same = await client.post(
        "/Patient",
        params=q,
        json=PATIENT,
        headers={"If-None-Exist": f"identifier={q['identifier']}"},
    )
    assert same.status_code == 200


async def test_conditional_update_and_delete(client):
    q = {"identifier": "urn:oid:2.16.156.10011.1.3|440104199001011232"}
    r = await client.put("/Patient", params=q, json=PATIENT)
    assert r.status_code == 201
    pid = r.json()["id"]
    r = await client.put("/Patient", params=q, json={**PATIENT, "gender": "unknown"})
    assert r.status_code == 200 and r.json()["id"] == pid
    assert r.json()["meta"]["versionId"] == "2"
    r = await client.delete("/Patient", params=q)
    assert r.status_code == 204
    assert (await client.get(f"/Patient/{pid}")).status_code == 410
    await create(client)
    await create(client)
    assert (await client.delete("/Patient", params=q)).status_code == 412
    assert (await client.put("/Patient", params=q, json=PATIENT)).status_code == 412


async def test_concurrent_updates_never_lose_versions(client):
    created = (await create(client)).json()
    pid = created["id"]
    results = await asyncio.gather(
        *(
            client.put(f"/Patient/{pid}", json={**created, "gender": g})
            for g in ["male", "other", "unknown", "male"] * 3
        )
    )
    ok = [r for r in results if r.status_code == 200]
    assert all(r.status_code in (200, 409) for r in results)
    versions = sorted(int(r.json()["meta"]["versionId"]) for r in ok)
    assert versions == list(range(2, 2 + len(ok)))  # every success got its own version
    hist = (await client.get(f"/Patient/{pid}/_history")).json()
    assert hist["total"] == 1 + len(ok)
