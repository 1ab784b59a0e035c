"""$export with authentication on: each role's export holds exactly what its access policy lets
it see (the leak-matrix world and its oracle, tests/auth/leak_world.py), the token's scopes
bound the types, and the job's status and files are served to the client that started it
only, with its token (`requiresAccessToken: true`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.bulk.spec import compartment_types
from tests.auth.leak_world import World, key_of
from tests.bulk.helpers import ASYNC
from tests.conftest import running_app

# Written by the gateway during the test itself (the audit trail of these very requests, the
# Provenance of the world's writes): not part of the oracle.
GATEWAY_WRITTEN = {"AuditEvent", "Provenance"}


@pytest.fixture(scope="module")
async def auth_bulk_app(bulk_database) -> AsyncIterator:
    # On the module's own database: the session gateways' in-process bulk runners (without
    # authentication) would otherwise claim its jobs and export without the access policies.
    async with running_app(
        bulk_database,
        auth="on",
        validation_workers=0,
        bulk_poll_interval=0.05,
        bulk_page_size=20,
        bulk_slice_seconds=0.2,
        bulk_retry_after=1,
    ) as application:
        yield application


@pytest.fixture(scope="module")
async def world(auth_bulk_app) -> AsyncIterator[World]:
    w = World(auth_bulk_app)
    await w.build()
    yield w
    await w.close()


async def export(world: World, key: str, path: str = "$export", headers=None) -> tuple[str, Any]:
    r = await world.call(key, "GET", path, headers={**ASYNC, **(headers or {})})
    assert r.status_code == 202, r.text
    status = r.headers["content-location"]
    deadline = time.monotonic() + 120
    while True:
        r = await world.call(key, "GET", status, headers=headers)
        if r.status_code == 200:
            return status, r.json()
        assert r.status_code == 202, r.text
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def exported(world: World, key: str, manifest: Any, headers=None) -> set[str]:
    keys: set[str] = set()
    for item in manifest["output"]:
        r = await world.call(key, "GET", item["url"], headers=headers)
        assert r.status_code == 200, r.text
        got = [json.loads(x) for x in r.text.splitlines()]
        assert len(got) == item["count"]
        keys.update(key_of(x) for x in got if x["resourceType"] not in GATEWAY_WRITTEN)
    return keys


@pytest.mark.parametrize(
    "key", ["admin", "pc-a", "pc-b", "hospital", "platform", "insurer", "sandbox"]
)
async def test_system_export_holds_exactly_what_the_role_sees(world, key):
    status, manifest = await export(world, key)
    assert manifest["requiresAccessToken"] is True
    expected = {k for k in world.visible(key) if k.split("/")[0] not in GATEWAY_WRITTEN}
    got = await exported(world, key, manifest)
    assert got == expected, f"leaked: {sorted(got - expected)}, missing: {sorted(expected - got)}"

    # the status and the files are the starting client's only
    other = "pc-b" if key != "pc-b" else "pc-a"
    assert (await world.call(other, "GET", status)).status_code == 404
    assert (await world.call(None, "GET", status)).status_code == 401
    if manifest["output"]:
        url = manifest["output"][0]["url"]
        assert (await world.call(other, "GET", url)).status_code == 404
        assert (await world.call(None, "GET", url)).status_code == 401
    assert (await world.call(other, "DELETE", status)).status_code == 404
    assert (await world.call(key, "DELETE", status)).status_code == 202


async def test_patient_level_export_is_the_visible_compartments(world):
    key = "pc-a"
    _, manifest = await export(world, key, "Patient/$export")
    kinds = set(compartment_types())
    expected = set()
    for k in world.visible(key):
        rec = world.recs[k]
        if rec.rtype in kinds and rec.rtype not in GATEWAY_WRITTEN:
            if rec.rtype == "Patient" or world.compartment_of(rec):
                expected.add(k)
    got = await exported(world, key, manifest)
    assert got == expected, f"leaked: {sorted(got - expected)}, missing: {sorted(expected - got)}"


async def test_token_scopes_bound_the_exported_types(world):
    assert world.http is not None
    client = world.clients["admin"]
    r = await world.http.post("/auth/token", data=client.form("system/Patient.rs"))
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await world.http.get("/$export", params={"_type": "Observation"}, headers={**ASYNC, **auth})
    assert r.status_code == 403, r.text
    r = await world.http.get("/$export", headers={**ASYNC, **auth})
    assert r.status_code == 202, r.text
    status = r.headers["content-location"]
    for _ in range(2400):
        r = await world.http.get(status, headers=auth)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200
    assert {o["type"] for o in r.json()["output"]} == {"Patient"}


async def test_group_of_a_teams_contracted_residents(world):
    team = {
        "resourceType": "Group",
        "id": "team-a-residents",
        "type": "person",
        "actual": False,
        "name": "团队 A 签约居民",
        "characteristic": [
            {
                "code": {"text": "签约团队"},
                "valueReference": {"reference": "CareTeam/team-a"},
                "exclude": False,
            }
        ],
    }
    await world.must_put(team)
    _, manifest = await export(world, "admin", "Group/team-a-residents/$export")
    got = await exported(world, "admin", manifest)
    # team-a's active contracts: c1 (p1); c3 (p3) is a draft
    contracted = {
        r.content["subject"]["reference"]
        for r in world.current("CarePlan").values()
        if r.content.get("status") == "active"
        and {"reference": "CareTeam/team-a"} in r.content.get("careTeam", [])
        and r.content.get("identifier")
    }
    assert contracted == {"Patient/p1"}
    assert {k for k in got if k.startswith("Patient/")} == contracted
    assert "Observation/obs-p1" in got and "Observation/obs-p2" not in got


async def test_a_worker_without_access_control_leaves_the_job_alone(
    world, auth_bulk_app, bulk_database
):
    """A gateway configured without authentication on the same database (a worker deployed
    with other settings) never runs an export started under an access policy: the job waits
    for a runner that applies the policy, and then holds exactly what the role sees."""
    bulk = next(p for p in auth_bulk_app.state.background if p.name == "bulk")
    await bulk.stop()
    try:
        async with running_app(
            bulk_database, validation_workers=0, bulk_poll_interval=0.05
        ) as open_gateway:
            assert any(p.name == "bulk" for p in open_gateway.state.background)
            r = await world.call("pc-a", "GET", "$export", headers=ASYNC)
            assert r.status_code == 202, r.text
            status = r.headers["content-location"]
            await asyncio.sleep(1.0)  # twenty polls of the open gateway's runner
            job = await bulk.jobs.get(status.rstrip("/").rsplit("/", 1)[-1])
            assert job is not None and job.status == "queued", job
            assert (await world.call("pc-a", "GET", status)).status_code == 202
    finally:
        await bulk.start()
    deadline = time.monotonic() + 120
    while (r := await world.call("pc-a", "GET", status)).status_code == 202:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert r.status_code == 200, r.text
    expected = {k for k in world.visible("pc-a") if k.split("/")[0] not in GATEWAY_WRITTEN}
    # (the open gateway installed the conformance resources at its start: public, not the world's)
    got = {k for k in await exported(world, "pc-a", r.json()) if k in world.recs}
    assert got == expected, f"leaked: {sorted(got - expected)}, missing: {sorted(expected - got)}"
