"""Transactions: POST [base] with a Bundle of type transaction (R4 http.html §3.1.0.11).

Spec text these tests rely on (http.html "Transaction Processing Rules" and "Batch/Transaction
Response"):
- "servers SHALL either accept all actions and return a 200 OK, along with a response bundle, or
  reject all resources and return an HTTP 400 or 500 type response."
- order: "1. Process any DELETE interactions 2. Process any POST interactions 3. Process any PUT
  or PATCH interactions 4. Process any GET or HEAD interactions 5. Resolve any conditional
  references"
- "If any resource identities (including resolved identities from conditional update/delete)
  overlap in steps 1-3, then the transaction SHALL fail."
- "When the server assigns a new id to any resource in the bundle which has a POST method ...
  it SHALL also update any references to that resource in the same bundle"; "Servers SHALL
  replace all matching links in the bundle, whether they are found in the resource ids, resource
  references, elements of type uri, url, oid, uuid, and <a href="" & <img src="" in the
  narrative."
- conditional references: "if there are no matches, or multiple matches, the transaction fails,
  and an error is returned to the user"
- "the server SHALL return a Bundle with type set to ... transaction-response that contains one
  entry for each entry in the request, in the same order"; "Each entry element SHALL contain a
  response element which details the outcome of processing the entry - the HTTP status code,
  and the location and ETag header values". "For a failed transaction, the server returns a
  single OperationOutcome instead of a Bundle."
"""

from __future__ import annotations

import base64
import json

import pytest

from ._helpers import (
    SYS,
    all_versions,
    assert_outcome,
    create,
    entry,
    observation,
    patient,
    ref_of_location,
    status_code,
    tx,
)

U1 = "urn:uuid:0c3f1b6e-1d7a-4c55-9d43-6a0a4c1d0001"
U2 = "urn:uuid:0c3f1b6e-1d7a-4c55-9d43-6a0a4c1d0002"
U3 = "urn:uuid:0c3f1b6e-1d7a-4c55-9d43-6a0a4c1d0003"


async def post_bundle(client, bundle):
    return await client.post("", json=bundle)


def ok_response(r, n_entries: int) -> list[dict]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "transaction-response"
    entries = body.get("entry", [])
    assert len(entries) == n_entries
    return entries


async def read(client, ref: str) -> dict:
    r = await client.get(f"/{ref}")
    assert r.status_code == 200, (ref, r.text)
    return r.json()


# --- response shape ----------------------------------------------------------------------
async def test_response_one_entry_per_request_in_order_with_status_location_etag(client):
    existing = await create(client, patient("old", gender="male"))
    bundle = tx(
        entry("GET", f"Patient/{existing['id']}"),
        entry("POST", "Patient", patient("p1"), U1),
        entry("PUT", "Patient/tx-put-1", patient("p2", id="tx-put-1")),
        entry("POST", "Observation", observation(U1)),
        entry("PUT", f"Patient/{existing['id']}", {**existing, "gender": "female"}),
        entry("DELETE", "Patient/never-existed"),
    )
    entries = ok_response(await post_bundle(client, bundle), 6)

    # entry 0: GET → 200 with the resource
    assert status_code(entries[0]["response"]) == 200
    assert entries[0]["resource"]["id"] == existing["id"]

    # write entries: status, location (Type/id/_history/vid) and ETag that match the stored version
    expected = [
        (1, "Patient", 201),
        (2, "Patient", 201),
        (3, "Observation", 201),
        (4, "Patient", 200),
    ]
    for i, rtype, status in expected:
        resp = entries[i]["response"]
        assert status_code(resp) == status, (i, resp)
        loc_type, loc_id, vid = ref_of_location(resp["location"])
        assert loc_type == rtype, (i, resp)
        stored = await read(client, f"{loc_type}/{loc_id}")
        assert vid == stored["meta"]["versionId"], (i, resp)
        assert resp["etag"] == f'W/"{stored["meta"]["versionId"]}"', (i, resp)
    assert ref_of_location(entries[2]["response"]["location"])[1] == "tx-put-1"
    assert ref_of_location(entries[4]["response"]["location"])[1] == existing["id"]
    assert ref_of_location(entries[4]["response"]["location"])[2] == "2"
    # DELETE of something unknown is still a success (http.html delete)
    assert 200 <= status_code(entries[5]["response"]) < 300


async def test_empty_transaction_is_not_an_error(client):
    # "It is not an error if the submitted bundle has no resources in it."
    r = await post_bundle(client, {"resourceType": "Bundle", "type": "transaction"})
    assert ok_response(r, 0) == []


# --- all or nothing ----------------------------------------------------------------------
async def _assert_nothing_changed(client, before, kept: dict):
    assert await all_versions(client) == before
    now = await read(client, f"Patient/{kept['id']}")
    assert now == kept


async def test_invalid_entry_rejects_everything(client):
    kept = await create(client, patient("kept", gender="male"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1"), U1),
        entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}),
        entry("DELETE", f"Patient/{kept['id']}-other"),
        entry("POST", "Observation", observation(U1)),
        entry("POST", "Patient", patient("bad", birthDate="2024-02-31")),
    )
    r = await post_bundle(client, bundle)
    assert_outcome(r, 400)
    await _assert_nothing_changed(client, before, kept)


async def test_version_conflict_in_last_entry_rejects_earlier_writes(client):
    kept = await create(client, patient("kept", gender="male"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1"), U1),
        entry("POST", "Observation", observation(U1)),
        entry("PUT", "Patient/tx-new-2", patient("new-2", id="tx-new-2")),
        entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}, ifMatch='W/"7"'),
    )
    r = await post_bundle(client, bundle)
    assert_outcome(r, (409, 412))
    await _assert_nothing_changed(client, before, kept)
    assert (await client.get("/Patient/tx-new-2")).status_code == 404


async def _no_op_hook(repo, write, current) -> None:  # noqa: ANN001
    return None


@pytest.mark.parametrize("with_hook", [False, True], ids=["overlapped", "write-hook"])
@pytest.mark.parametrize("conflict", ["put-if-match", "delete-if-match"])
async def test_invalid_entry_is_reported_before_a_write_conflict(core, client, with_hook, conflict):
    # Writes overlap validation (unless a write hook needs validated resources); a conflict met
    # meanwhile must not hide the invalid entry: every invalid entry is reported first (and
    # nothing is written), whichever step the conflict comes from.
    kept = await create(client, patient("kept", gender="male"))
    before = await all_versions(client)
    stale = 'W/"7"'
    first = (
        entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}, ifMatch=stale)
        if conflict == "put-if-match"
        else entry("DELETE", f"Patient/{kept['id']}", ifMatch=stale)
    )
    bundle = tx(first, entry("POST", "Patient", patient("bad", birthDate="2024-02-31")))
    if with_hook:
        core.store.hooks.append(_no_op_hook)
    try:
        r = await post_bundle(client, bundle)
    finally:
        if with_hook:
            core.store.hooks.remove(_no_op_hook)
    assert_outcome(r, 400)
    assert any("Bundle.entry[1]" in e for i in r.json()["issue"] for e in i.get("expression", []))
    await _assert_nothing_changed(client, before, kept)


async def test_failing_delete_precondition_rejects_everything(client):
    kept = await create(client, patient("kept"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1")),
        entry("DELETE", f"Patient/{kept['id']}", ifMatch='W/"9"'),
    )
    assert_outcome(await post_bundle(client, bundle), (409, 412))
    await _assert_nothing_changed(client, before, kept)


async def test_failing_patch_entry_rolls_back_creates_and_updates(client):
    # PATCH entries are processed after POST and PUT: their failure must still undo those.
    kept = await create(client, patient("kept", gender="male"))
    target = await create(client, patient("target"))
    before = await all_versions(client)
    bad_patch = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(b'[{"op":"remove","path":"/nothing-here"}]').decode(),
    }
    bundle = tx(
        entry("POST", "Patient", patient("new-1")),
        entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}),
        entry("PATCH", f"Patient/{target['id']}", bad_patch),
    )
    r = await post_bundle(client, bundle)
    assert_outcome(r)
    await _assert_nothing_changed(client, before, kept)


async def test_unresolvable_urn_reference_rejects(client):
    kept = await create(client, patient("kept"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1"), U1),
        entry("POST", "Observation", observation(U2)),  # U2 is not in the bundle
    )
    assert_outcome(await post_bundle(client, bundle))
    await _assert_nothing_changed(client, before, kept)


# --- urn:uuid rewriting ------------------------------------------------------------------
async def test_urn_uuid_references_are_rewritten_to_assigned_ids(client):
    pat = patient("p1", link=[{"other": {"reference": U3}, "type": "seealso"}])
    pat2 = patient("p2", link=[{"other": {"reference": U1}, "type": "seealso"}])  # circular
    obs = observation(U1)
    obs["performer"] = [{"reference": U3}]
    obs["hasMember"] = [{"reference": U2}]
    obs2 = observation(U3, "心率")
    bundle = tx(
        entry("POST", "Observation", obs),  # refers forward to entries below
        entry("POST", "Patient", pat, U1),
        entry("POST", "Observation", obs2, U2),
        entry("POST", "Patient", pat2, U3),
    )
    entries = ok_response(await post_bundle(client, bundle), 4)
    ids = [ref_of_location(e["response"]["location"])[:2] for e in entries]
    obs_ref, p1_ref, obs2_ref, p2_ref = (f"{t}/{i}" for t, i in ids)

    stored_obs = await read(client, obs_ref)
    assert stored_obs["subject"]["reference"] == p1_ref
    assert stored_obs["performer"][0]["reference"] == p2_ref
    assert stored_obs["hasMember"][0]["reference"] == obs2_ref
    assert (await read(client, obs2_ref))["subject"]["reference"] == p2_ref
    stored_p1 = await read(client, p1_ref)
    assert stored_p1["link"][0]["other"]["reference"] == p2_ref
    stored_p2 = await read(client, p2_ref)
    assert stored_p2["link"][0]["other"]["reference"] == p1_ref
    # the server assigned ids: no urn:uuid survives anywhere
    for ref in (obs_ref, p1_ref, obs2_ref, p2_ref):
        assert "urn:uuid:" not in json.dumps(await read(client, ref))


async def test_urn_uuid_in_uri_element_and_narrative_is_rewritten(client):
    obs = observation(U1)
    obs["extension"] = [
        {"url": "http://example.org/fhir/StructureDefinition/source", "valueUri": U1}
    ]
    obs["text"] = {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{U1}">张三</a></div>',
    }
    bundle = tx(entry("POST", "Patient", patient("p1"), U1), entry("POST", "Observation", obs))
    entries = ok_response(await post_bundle(client, bundle), 2)
    ptype, pid, _ = ref_of_location(entries[0]["response"]["location"])
    otype, oid, _ = ref_of_location(entries[1]["response"]["location"])
    stored = await read(client, f"{otype}/{oid}")
    assert stored["subject"]["reference"] == f"{ptype}/{pid}"
    assert U1 not in json.dumps(stored, ensure_ascii=False)


# --- conditional references --------------------------------------------------------------
async def test_conditional_reference_single_match_is_resolved(client):
    target = await create(client, patient("cond-1"))
    bundle = tx(entry("POST", "Observation", observation(f"Patient?identifier={SYS}|cond-1")))
    entries = ok_response(await post_bundle(client, bundle), 1)
    otype, oid, _ = ref_of_location(entries[0]["response"]["location"])
    stored = await read(client, f"{otype}/{oid}")
    assert stored["subject"]["reference"] == f"Patient/{target['id']}"


async def test_conditional_reference_without_match_fails_the_transaction(client):
    kept = await create(client, patient("kept"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1")),
        entry("POST", "Observation", observation(f"Patient?identifier={SYS}|nobody")),
    )
    assert_outcome(await post_bundle(client, bundle))
    await _assert_nothing_changed(client, before, kept)


async def test_conditional_reference_with_two_matches_fails_with_412(client):
    kept = await create(client, patient("twin"))
    await create(client, patient("twin"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("new-1")),
        entry("POST", "Observation", observation(f"Patient?identifier={SYS}|twin")),
    )
    # Multiple matches: as for every conditional interaction, 412 Precondition Failed.
    assert_outcome(await post_bundle(client, bundle), 412)
    await _assert_nothing_changed(client, before, kept)


async def test_conditional_reference_is_resolved_after_deletes(client):
    doomed = await create(client, patient("doomed"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Observation", observation(f"Patient?identifier={SYS}|doomed")),
        entry("DELETE", f"Patient/{doomed['id']}"),
    )
    r = await post_bundle(client, bundle)
    # After the DELETE the search has no match: "the transaction fails".
    assert_outcome(r)
    assert await all_versions(client) == before


async def test_conditional_reference_sees_resource_created_in_same_transaction(client):
    bundle = tx(
        entry("POST", "Observation", observation(f"Patient?identifier={SYS}|born-here")),
        entry("POST", "Patient", patient("born-here")),
    )
    entries = ok_response(await post_bundle(client, bundle), 2)
    otype, oid, _ = ref_of_location(entries[0]["response"]["location"])
    ptype, pid, _ = ref_of_location(entries[1]["response"]["location"])
    stored = await read(client, f"{otype}/{oid}")
    assert stored["subject"]["reference"] == f"{ptype}/{pid}"


# --- conditional create / update inside a transaction ------------------------------------
async def test_if_none_exist_match_creates_nothing_and_references_follow_it(client):
    existing = await create(client, patient("known"))
    bundle = tx(
        entry("POST", "Patient", patient("known"), U1, ifNoneExist=f"identifier={SYS}|known"),
        entry("POST", "Observation", observation(U1)),
    )
    entries = ok_response(await post_bundle(client, bundle), 2)
    # "One Match: The server ignores the post and returns 200 OK"
    assert status_code(entries[0]["response"]) == 200
    assert ref_of_location(entries[0]["response"]["location"])[:2] == ("Patient", existing["id"])
    otype, oid, _ = ref_of_location(entries[1]["response"]["location"])
    stored_obs = await read(client, f"{otype}/{oid}")
    assert stored_obs["subject"]["reference"] == f"Patient/{existing['id']}"
    found = (await client.get("/Patient", params={"identifier": f"{SYS}|known"})).json()
    assert len(found.get("entry", [])) == 1


async def test_if_none_exist_without_match_creates(client):
    bundle = tx(entry("POST", "Patient", patient("fresh"), ifNoneExist=f"identifier={SYS}|fresh"))
    entries = ok_response(await post_bundle(client, bundle), 1)
    assert status_code(entries[0]["response"]) == 201
    found = (await client.get("/Patient", params={"identifier": f"{SYS}|fresh"})).json()
    assert len(found.get("entry", [])) == 1


async def test_if_none_exist_with_two_matches_fails(client):
    kept = await create(client, patient("dup"))
    await create(client, patient("dup"))
    before = await all_versions(client)
    bundle = tx(
        entry("POST", "Patient", patient("other")),
        entry("POST", "Patient", patient("dup"), ifNoneExist=f"identifier={SYS}|dup"),
    )
    assert_outcome(await post_bundle(client, bundle), 412)
    await _assert_nothing_changed(client, before, kept)


async def test_conditional_put_in_transaction(client):
    q = f"Patient?identifier={SYS}|cput"
    # no match → create
    r1 = await post_bundle(client, tx(entry("PUT", q, patient("cput", gender="male"))))
    e1 = ok_response(r1, 1)
    assert status_code(e1[0]["response"]) == 201
    _, pid, vid = ref_of_location(e1[0]["response"]["location"])
    assert vid == "1"
    # one match → update that resource
    r2 = await post_bundle(client, tx(entry("PUT", q, patient("cput", gender="female"))))
    e2 = ok_response(r2, 1)
    assert status_code(e2[0]["response"]) == 200
    assert ref_of_location(e2[0]["response"]["location"]) == ("Patient", pid, "2")
    assert (await read(client, f"Patient/{pid}"))["gender"] == "female"
    # two matches → 412, nothing written
    await create(client, patient("cput"))
    before = await all_versions(client)
    r = await post_bundle(
        client,
        tx(
            entry("POST", "Patient", patient("x")), entry("PUT", q, patient("cput", gender="other"))
        ),
    )
    assert_outcome(r, 412)
    assert await all_versions(client) == before


# --- processing order --------------------------------------------------------------------
async def test_get_entry_sees_resources_written_by_the_transaction(client):
    bundle = tx(
        entry("GET", f"Patient?identifier={SYS}|seen"),  # listed first, processed last
        entry("GET", "Patient/order-put"),
        entry("POST", "Patient", patient("seen")),
        entry("PUT", "Patient/order-put", patient("put", id="order-put")),
    )
    entries = ok_response(await post_bundle(client, bundle), 4)
    search = entries[0]["resource"]
    assert search["resourceType"] == "Bundle" and search["type"] == "searchset"
    created_id = ref_of_location(entries[2]["response"]["location"])[1]
    assert [e["resource"]["id"] for e in search.get("entry", [])] == [created_id]
    assert status_code(entries[1]["response"]) == 200
    assert entries[1]["resource"]["id"] == "order-put"


@pytest.mark.parametrize("delete_url", ["direct", "conditional"])
async def test_delete_runs_before_conditional_create(client, delete_url):
    old = await create(client, patient("swap"))
    cond = f"identifier={SYS}|swap"
    url = f"Patient/{old['id']}" if delete_url == "direct" else f"Patient?{cond}"
    bundle = tx(
        entry("POST", "Patient", patient("swap", gender="female"), ifNoneExist=cond),
        entry("DELETE", url),
    )
    entries = ok_response(await post_bundle(client, bundle), 2)
    # The DELETE ran first, so the conditional create found no match and created a Patient.
    assert (await client.get(f"/Patient/{old['id']}")).status_code == 410
    assert status_code(entries[0]["response"]) == 201
    found = (await client.get("/Patient", params={"identifier": f"{SYS}|swap"})).json()
    assert [e["resource"]["gender"] for e in found.get("entry", [])] == ["female"]


# --- identity overlap --------------------------------------------------------------------
@pytest.mark.parametrize("second", ["PUT", "DELETE", "PATCH", "CONDITIONAL_PUT"])
async def test_overlapping_identities_fail(client, second):
    kept = await create(client, patient("overlap"))
    before = await all_versions(client)
    first = entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "male"})
    other = {
        "PUT": entry("PUT", f"Patient/{kept['id']}", {**kept, "gender": "female"}),
        "DELETE": entry("DELETE", f"Patient/{kept['id']}"),
        "PATCH": entry(
            "PATCH",
            f"Patient/{kept['id']}",
            {
                "resourceType": "Binary",
                "contentType": "application/json-patch+json",
                "data": base64.b64encode(b'[{"op":"add","path":"/active","value":true}]').decode(),
            },
        ),
        # resolves to the same identity as `first`
        "CONDITIONAL_PUT": entry(
            "PUT", f"Patient?identifier={SYS}|overlap", patient("overlap", gender="other")
        ),
    }[second]
    assert_outcome(await post_bundle(client, tx(first, other)))
    await _assert_nothing_changed(client, before, kept)


# --- PATCH entries -----------------------------------------------------------------------
async def test_fhirpath_patch_entry_is_applied_or_the_whole_transaction_rejected(client):
    # R4 http.html: "Patch operations may be performed as part of Batch or Transaction
    # Operations using the FHIRPath Patch format." A server that does not support it must still
    # keep the transaction atomic.
    target = await create(client, patient("fp", gender="male"))
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.gender"},
                    {"name": "value", "valueCode": "female"},
                ],
            }
        ],
    }
    before = await all_versions(client)
    r = await post_bundle(
        client,
        tx(
            entry("POST", "Patient", patient("fp-new")),
            entry("PATCH", f"Patient/{target['id']}", params),
        ),
    )
    if r.status_code == 200:
        ok_response(r, 2)
        assert (await read(client, f"Patient/{target['id']}"))["gender"] == "female"
    else:
        assert_outcome(r)
        await _assert_nothing_changed(client, before, target)


async def test_binary_json_patch_entry(client):
    target = await create(client, patient("bp", gender="male"))
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(ops).encode()).decode(),
    }
    entries = ok_response(
        await post_bundle(client, tx(entry("PATCH", f"Patient/{target['id']}", binary))), 1
    )
    assert status_code(entries[0]["response"]) == 200
    assert ref_of_location(entries[0]["response"]["location"])[2] == "2"
    assert (await read(client, f"Patient/{target['id']}"))["gender"] == "female"


# --- malformed bundles are 4xx, never 5xx ------------------------------------------------
@pytest.mark.parametrize(
    "bad_entry",
    [
        pytest.param(entry("DELETE", "Patient"), id="delete-without-id-or-query"),
        pytest.param(entry("PUT", "Patient", patient("x")), id="put-without-id-or-query"),
        pytest.param(
            entry("PATCH", "Patient", [{"op": "add", "path": "/active", "value": True}]),
            id="patch-without-id-or-query",
        ),
        pytest.param(
            entry("PUT", "Patient/" + "y" * 80, patient("x", id="y" * 80)),
            id="put-id-longer-than-64",
        ),
        pytest.param(entry("PUT", "Patient/a/b", patient("x", id="a")), id="put-bad-url"),
        pytest.param(entry("POST", "Patient/abc", patient("x")), id="post-to-instance"),
        pytest.param(entry("POST", "Nope", {"resourceType": "Nope"}), id="unknown-type"),
        pytest.param(
            entry(
                "POST",
                "Patient",
                {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
            ),
            id="type-mismatch",
        ),
    ],
)
async def test_malformed_entry_is_a_4xx_outcome_and_changes_nothing(client, bad_entry):
    kept = await create(client, patient("kept"))
    before = await all_versions(client)
    r = await post_bundle(client, tx(entry("POST", "Patient", patient("fine")), bad_entry))
    assert_outcome(r)
    await _assert_nothing_changed(client, before, kept)
