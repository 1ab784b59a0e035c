"""The audit trail with authentication on: one AuditEvent per request, saying who (the client
and its organisation), what (the resource or the query) and the outcome; visible to admins
only; append-only. Runs on the regional world of tests/auth/leak_world.py."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from tests.auth.leak_world import CLIENT_SYSTEM, CLIENTS, World, key_of, observation

# R4 ValueSet restful-interaction (http://hl7.org/fhir/restful-interaction)
RESTFUL_INTERACTIONS = {
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history",
    "history-instance",
    "history-type",
    "history-system",
    "create",
    "search",
    "search-type",
    "search-system",
    "capabilities",
    "transaction",
    "batch",
    "operation",
}


@pytest.fixture(scope="module")
async def world(auth_app):
    w = World(auth_app)
    await w.build()
    yield w
    await w.close()


def _obs(pid: str) -> dict[str, Any]:
    o = observation("x", pid)
    o.pop("id")
    return o


def _entity_refs(event: dict[str, Any]) -> list[str]:
    return [x["what"]["reference"] for x in event.get("entity", []) if "reference" in x["what"]]


def _queries(event: dict[str, Any]) -> list[str]:
    return [base64.b64decode(x["query"]).decode() for x in event.get("entity", []) if "query" in x]


async def test_known_sequence_is_audited(world: World):
    """Thirteen requests by one client: thirteen AuditEvents naming it and its organisation,
    each with the request's outcome, action and what it touched."""
    c = "pc-a"
    first = len(world.log)
    steps: list[tuple[str, str, Any, int]] = [
        ("GET", "Patient/p1", None, 200),
        ("GET", "Patient/p2", None, 404),
        ("GET", "Observation?subject=Patient/p1", None, 200),
        ("POST", "Observation", _obs("p1"), 201),
    ]
    for method, url, body, status in steps:
        r = await world.call(c, method, url, json_body=body)
        assert r.status_code == status, f"{method} {url}: {r.status_code} {r.text[:200]}"
    created = key_of(r.json())
    update = {**r.json(), "status": "amended"}
    update.pop("meta")
    later: list[tuple[str, str, Any, int]] = [
        ("PUT", created, update, 200),
        ("POST", "Observation", _obs("p2"), 403),
        ("DELETE", created, None, 204),
        ("GET", "Patient/p1/$everything", None, 200),
        (
            "POST",
            "",
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {"request": {"method": "GET", "url": "Patient/p1"}},
                    {"request": {"method": "GET", "url": "Patient/p2"}},
                ],
            },
            200,
        ),
        (
            "POST",
            "",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:0c3f4d1e-4a0e-4f57-9d55-6f2a3c1b0a01",
                        "request": {"method": "POST", "url": "Observation"},
                        "resource": _obs("p1"),
                    }
                ],
            },
            200,
        ),
        ("GET", "_history?_count=5", None, 200),
        ("GET", "AuditEvent", None, 200),
        ("POST", "AuditEvent", {"resourceType": "AuditEvent"}, 403),
    ]
    for method, url, body, status in later:
        r = await world.call(c, method, url, json_body=body)
        assert r.status_code == status, f"{method} {url}: {r.status_code} {r.text[:200]}"
    made = world.log[first:]
    assert len(made) == 13
    by_request, _ = await world.audit_trail({x.request_id for x in made})
    client_id = world.clients[c].client_id
    mine = [
        ev
        for events in by_request.values()
        for ev in events
        if any(
            a.get("who", {}).get("identifier", {}).get("value") == client_id
            for a in ev.get("agent", [])
        )
    ]
    assert len(mine) == len(made), f"{len(made)} requests by {c}, {len(mine)} AuditEvents"
    expected_action = {"GET": "R", "PUT": "U", "DELETE": "D"}
    wrong = []
    for x in made:
        events = by_request.get(x.request_id, [])
        if len(events) != 1:
            wrong.append(f"{x.method} {x.url}: {len(events)} AuditEvents")
            continue
        event = events[0]
        outcome = "0" if x.status < 400 else "4"
        agent = event["agent"][0]["who"]
        if (
            event.get("outcome") != outcome
            or agent.get("identifier") != {"system": CLIENT_SYSTEM, "value": client_id}
            or agent.get("reference") != CLIENTS[c][1]
        ):
            wrong.append(f"{x.method} {x.url} → {x.status}: {json.dumps(event)[:300]}")
        action = expected_action.get(x.method)
        if x.method == "POST" and x.url in ("Observation", "AuditEvent"):
            action = "C"
        if x.url == "":
            action = "E"
        if action and event.get("action") != action:
            wrong.append(f"{x.method} {x.url}: action {event.get('action')}, expected {action}")
    assert not wrong, "; ".join(wrong)
    # what: the resource read, the query searched, the version written
    read_event = by_request[made[0].request_id][0]
    assert "Patient/p1" in _entity_refs(read_event), read_event
    search_event = by_request[made[2].request_id][0]
    assert _queries(search_event) == ["subject=Patient/p1"], search_event
    create_event = by_request[made[3].request_id][0]
    assert f"{created}/_history/1" in _entity_refs(create_event), create_event


async def test_audit_subtypes_are_restful_interactions(world: World):
    """AuditEvent.subtype uses http://hl7.org/fhir/restful-interaction: its codes only
    (an operation is `operation`, not its name)."""
    for url in ("Patient/p1/$everything", "Patient/p1/$validate", "Patient/p1"):
        r = await world.call("pc-a", "GET", url)
        assert r.status_code == 200
    made = world.log[-3:]
    by_request, _ = await world.audit_trail({x.request_id for x in made})
    wrong = []
    for x in made:
        for event in by_request.get(x.request_id, []):
            for sub in event.get("subtype", []):
                if sub.get("system") == "http://hl7.org/fhir/restful-interaction" and (
                    sub.get("code") not in RESTFUL_INTERACTIONS
                ):
                    wrong.append(f"GET {x.url}: subtype {sub.get('code')}")
    assert not wrong, "; ".join(wrong)


async def test_gateway_records_validate(world: World):
    """The AuditEvents and Provenances the gateway writes are valid R4 resources."""
    r = await world.call("pc-a", "GET", "Patient/p1")
    rid = world.log[-1].request_id
    by_request, _ = await world.audit_trail({rid})
    [event] = by_request[rid]
    provenance = next(iter((await world.provenances()).values())).content
    for resource in (event, provenance):
        r = await world.call(
            "auditor", "POST", f"{resource['resourceType']}/$validate", json_body=resource
        )
        errors = [i for i in r.json().get("issue", []) if i.get("severity") in ("error", "fatal")]
        assert r.status_code == 200 and not errors, f"{resource['resourceType']}: {errors}"


@pytest.mark.parametrize("role", ["pc-a", "pc-b", "hospital", "platform", "insurer", "sandbox"])
async def test_audit_trail_admin_only(world: World, role: str):
    await world.call(role, "GET", "Patient/p1")
    by_request, _ = await world.audit_trail({world.log[-1].request_id})
    some = next(iter(by_request.values()))[0]
    for url in (
        "AuditEvent",
        f"AuditEvent?_id={some['id']}",
        "?_type=AuditEvent",
        "AuditEvent/_history",
    ):
        r = await world.call(role, "GET", url)
        assert r.status_code == 200, f"{role} GET {url}: {r.status_code}"
        assert not r.json().get("entry") and r.json().get("total") in (0, None), (
            f"{role} GET {url}: {r.text[:300]}"
        )
    for url in (f"AuditEvent/{some['id']}", f"AuditEvent/{some['id']}/_history"):
        r = await world.call(role, "GET", url)
        assert r.status_code == 404, f"{role} GET {url}: {r.status_code}"
    r = await world.call("auditor", "GET", f"AuditEvent/{some['id']}")
    assert r.status_code == 200


async def test_audit_trail_append_only(world: World):
    """No client changes the audit trail, not even an admin: 403 with an OperationOutcome."""
    by_request, _ = await world.audit_trail(set())
    event = next(iter(by_request.values()))[0]
    k = key_of(event)
    body = {**event, "outcomeDesc": "rewritten"}
    body.pop("meta")
    patch = json.dumps([{"op": "replace", "path": "/outcome", "value": "0"}]).encode()
    for method, url, kwargs in [
        ("PUT", k, {"json_body": body}),
        ("DELETE", k, {}),
        (
            "PATCH",
            k,
            {"content": patch, "headers": {"Content-Type": "application/json-patch+json"}},
        ),
        ("DELETE", "AuditEvent?outcome=0", {}),
    ]:
        r = await world.call("admin", method, url, **kwargs)
        assert r.status_code == 403, f"admin {method} {url}: {r.status_code} {r.text[:200]}"
        assert r.json()["resourceType"] == "OperationOutcome"
    r = await world.call("auditor", "GET", k)
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "1"


async def test_refused_token_is_audited(world: World):
    """A request without a valid token (401) leaves an AuditEvent with outcome 4."""
    _, before = await world.audit_trail(set())
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        r = await world.call(None, "GET", "Patient/p1", headers=headers)
        assert r.status_code == 401
    for _ in range(10):
        _, after = await world.audit_trail(set())
        if len(after) >= len(before) + 2:
            break
        await asyncio.sleep(0.5)
    refused = [ev for ev in after if ev.get("outcome") == "4"]
    assert len(after) - len(before) == 2 and len(refused) >= 2, (before, after)
