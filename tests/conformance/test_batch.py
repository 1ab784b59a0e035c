"""Batches (R4 http.html "Batch Processing Rules", "Batch/Transaction Response").

- "When processing the batch, the HTTP response code is 200 Ok if the batch was processed
  correctly, regardless of the success of the operations within the Batch. ... A response code on
  an entry of other than 2xx (200, 202 etc) indicates that processing the request in the entry
  failed."
- "the server SHALL return a Bundle with type set to batch-response ... that contains one entry
  for each entry in the request, in the same order, with the outcome of processing the entry."
- Bundle.entry.response.outcome: "An OperationOutcome containing hints and warnings produced as
  part of processing this entry in a batch or transaction."
"""

from __future__ import annotations

from ._helpers import (
    SYS,
    create,
    entry,
    patient,
    ref_of_location,
    status_code,
    tx,
)


async def test_entries_fail_independently(client):
    kept = await create(client, patient("kept", gender="male"))
    bundle = tx(
        entry("POST", "Patient", patient("b-ok-1")),  # 0 ok
        entry("POST", "Patient", patient("b-bad", birthDate="2024-02-31")),  # 1 invalid
        entry("GET", "Patient/does-not-exist"),  # 2 404
        entry("PUT", "Patient/batch-put", patient("b-ok-2", id="batch-put")),  # 3 ok
        entry(
            "PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}, ifMatch='W/"42"'
        ),  # 4 412
        entry("POST", "Nope", {"resourceType": "Nope"}),  # 5 unknown
        entry("GET", f"Patient/{kept['id']}"),  # 6 ok
        entry("DELETE", "Patient/batch-nothing"),  # 7 ok
        kind="batch",
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "batch-response"
    entries = body["entry"]
    assert len(entries) == 8
    codes = [status_code(e["response"]) for e in entries]
    assert codes[0] == 201 and codes[3] == 201 and codes[6] == 200
    assert 200 <= codes[7] < 300
    assert codes[1] == 400
    assert codes[2] == 404
    assert codes[4] == 412
    assert 400 <= codes[5] < 500
    for i in (1, 2, 4, 5):
        outcome = entries[i]["response"].get("outcome")
        assert outcome and outcome["resourceType"] == "OperationOutcome", entries[i]
        assert "resource" not in entries[i]
    # The successful entries are stored, the failed ones are not.
    created = ref_of_location(entries[0]["response"]["location"])
    assert created[0] == "Patient"
    assert (await client.get(f"/Patient/{created[1]}")).status_code == 200
    assert (await client.get("/Patient/batch-put")).status_code == 200
    assert (await client.get(f"/Patient/{kept['id']}")).json() == kept
    assert entries[6]["resource"] == kept
    bad = (await client.get("/Patient", params={"identifier": f"{SYS}|b-bad"})).json()
    assert bad.get("entry", []) == []


async def test_batch_response_entries_carry_location_and_etag(client):
    bundle = tx(
        entry("POST", "Patient", patient("b1")),
        entry("PUT", "Patient/b-put", patient("b2", id="b-put")),
        kind="batch",
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200
    for e in r.json()["entry"]:
        resp = e["response"]
        rtype, rid, vid = ref_of_location(resp["location"])
        stored = (await client.get(f"/{rtype}/{rid}")).json()
        assert vid == stored["meta"]["versionId"] == "1"
        assert resp["etag"] == 'W/"1"'
        assert e["fullUrl"].endswith(f"/{rtype}/{rid}")  # as transaction responses have
        # lastModified: an instant, at the HTTP header's precision (whole seconds)
        assert resp["lastModified"][:19] == stored["meta"]["lastUpdated"][:19]


async def test_all_entries_failing_is_still_200(client):
    bundle = tx(
        entry("GET", "Patient/nope-1"),
        entry("POST", "Patient", patient("x", active="maybe", gender="robot")),
        kind="batch",
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "batch-response"
    assert [status_code(e["response"]) // 100 for e in body["entry"]] == [4, 4]


async def test_an_entry_referring_to_another_entry_fails_alone(client):
    # http.html (batch): "there SHALL be no interdependencies between the different entries".
    pid = "urn:uuid:6b8b7c1e-8f5c-4a0e-9d1e-2b9f8a2c0001"
    bundle = tx(
        entry("POST", "Patient", patient("b-dep"), full_url=pid),
        entry(
            "POST",
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "体温"},
                "subject": {"reference": pid},
            },
        ),
        kind="batch",
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    first, second = r.json()["entry"]
    assert status_code(first["response"]) == 201
    assert status_code(second["response"]) == 400
    issue = second["response"]["outcome"]["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.subject.reference"]
    found = (await client.get("/Observation", params={"code:text": "体温"})).json()
    assert found.get("total", 0) == 0  # nothing stored with a dangling urn:uuid


async def test_duplicate_full_urls_are_rejected(client):
    # bdl-7: "FullUrl must be unique in a bundle, or else entries with the same fullUrl must
    # have different meta.versionId".
    dup = "urn:uuid:6b8b7c1e-8f5c-4a0e-9d1e-2b9f8a2c0002"
    for kind in ("batch", "transaction"):
        bundle = tx(
            entry("POST", "Patient", patient("dup-1"), full_url=dup),
            entry("POST", "Patient", patient("dup-2"), full_url=dup),
            kind=kind,
        )
        r = await client.post("", json=bundle)
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].fullUrl"]
    found = (await client.get("/Patient", params={"identifier": f"{SYS}|dup-1"})).json()
    assert found.get("total", 0) == 0


async def test_prefer_operation_outcome_gives_each_entry_an_outcome(client):
    # R4 http.html: Prefer: return=OperationOutcome asks for an outcome instead of resources;
    # in a Bundle response it goes in entry.response.outcome.
    for kind in ("batch", "transaction"):
        bundle = tx(entry("POST", "Patient", patient(f"oo-{kind}")), kind=kind)
        r = await client.post("", json=bundle, headers={"Prefer": "return=OperationOutcome"})
        assert r.status_code == 200, r.text
        [e] = r.json()["entry"]
        assert "resource" not in e
        assert e["response"]["outcome"]["resourceType"] == "OperationOutcome"
        assert e["response"]["outcome"]["issue"][0]["severity"] == "information"


async def test_prefer_operation_outcome_leaves_read_entries_alone(client):
    p = await create(client, patient("oo-read"))
    bundle = tx(entry("GET", f"Patient/{p['id']}"), kind="batch")
    r = await client.post("", json=bundle, headers={"Prefer": "return=OperationOutcome"})
    [e] = r.json()["entry"]
    assert e["resource"]["id"] == p["id"]


async def test_a_full_url_that_is_not_a_string_is_400(client):
    for kind in ("batch", "transaction"):
        bundle = tx(entry("POST", "Patient", patient(f"fu-{kind}"), full_url=5), kind=kind)
        r = await client.post("", json=bundle)
        if kind == "transaction":
            assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].fullUrl"]
            assert r.status_code == 400
        else:
            [e] = r.json()["entry"]
            assert status_code(e["response"]) == 400
    assert (await client.get("/Patient")).json()["total"] == 0


async def test_entry_request_fields_are_checked_and_own_absolute_urls_accepted(client):
    base = str(client.base_url).rstrip("/")
    for kind in ("batch", "transaction"):
        bundle = tx(entry("POST", f"{base}/Patient", patient(f"abs-{kind}")), kind=kind)
        r = await client.post("", json=bundle)
        assert r.status_code == 200, r.text
        assert status_code(r.json()["entry"][0]["response"]) == 201
    bundle = tx(entry("PUT", "Patient/typed", patient("typed", id="typed")), kind="batch")
    bundle["entry"][0]["request"]["ifMatch"] = 5
    [e] = (await client.post("", json=bundle)).json()["entry"]
    assert status_code(e["response"]) == 400
    assert e["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[0].request.ifMatch"]


async def test_entry_statuses_carry_reason_phrases(client):
    bundle = tx(entry("POST", "metadata", {"resourceType": "Patient"}), kind="batch")
    [e] = (await client.post("", json=bundle)).json()["entry"]
    code = status_code(e["response"])
    assert 400 <= code < 500
    assert e["response"]["status"] != str(code)  # "405 Method Not Allowed", not "405"
