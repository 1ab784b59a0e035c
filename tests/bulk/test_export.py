"""$export end to end over HTTP (the in-process runner of the embedded default), on SQLite and
PostgreSQL: kick-off, polling, manifest, files split at a size, parameters, the three levels,
cancel and expiry."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from gateway.bulk.jobs import Jobs
from gateway.store.tables import bulk_chunks, bulk_jobs
from gateway.vocab import clock
from tests.bulk.conftest import FILE_MAX_BYTES
from tests.bulk.helpers import (
    ASYNC,
    ids,
    kickoff,
    lines,
    load,
    observation,
    outputs,
    put_bundle,
    wait,
)


async def test_system_export_polls_then_serves_every_resource_once_in_split_files(bulk):
    pids, oids = await load(bulk, 40, obs_per=2)
    org = {"resourceType": "Organization", "id": "org1", "name": "社区卫生服务中心"}
    assert (await bulk.put("/Organization/org1", json=org)).status_code == 201
    status_url = await kickoff(bulk, "/$export")
    assert status_url.startswith("http://testserver/fhir/$export-status/")
    manifest = await wait(bulk, status_url)
    assert manifest["requiresAccessToken"] is False
    assert manifest["request"] == "http://testserver/fhir/$export"
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["error"] == []
    got = await outputs(bulk, manifest)
    assert sorted(ids(got["Patient"])) == sorted(pids)
    assert sorted(ids(got["Observation"])) == sorted(oids)
    assert ids(got["Organization"]) == ["org1"]
    assert got["Patient"][0]["name"][0]["family"] == "张"
    # 80 observations of ~500 bytes: split into several files, none beyond the limit
    obs_files = [o for o in manifest["output"] if o["type"] == "Observation"]
    assert len(obs_files) >= 3
    for item in obs_files:
        r = await bulk.get(item["url"])
        assert len(r.content) <= FILE_MAX_BYTES
    assert set(got) == {"Patient", "Observation", "Organization"}


async def test_type_since_and_type_filter(bulk):
    await load(bulk, 6, obs_per=1, tag="a")
    since = clock.to_instant(clock.now_us())
    await asyncio.sleep(0.01)
    new_pids, new_oids = await load(bulk, 4, obs_per=1, tag="b")
    manifest = await wait(bulk, await kickoff(bulk, params={"_since": since}))
    got = await outputs(bulk, manifest)
    assert sorted(ids(got["Patient"])) == sorted(new_pids)
    assert sorted(ids(got["Observation"])) == sorted(new_oids)

    manifest = await wait(bulk, await kickoff(bulk, params={"_type": "Patient"}))
    assert {o["type"] for o in manifest["output"]} == {"Patient"}
    assert sum(o["count"] for o in manifest["output"]) == 10

    # two filters on one type are OR-ed; each filter's parameters AND-ed
    params = [
        ("_type", "Patient,Observation"),
        ("_typeFilter", "Patient?gender=female&name=张"),
        ("_typeFilter", "Patient?_id=pa1,pa2"),
        ("_outputFormat", "application/fhir+ndjson"),
    ]
    manifest = await wait(bulk, await kickoff(bulk, params=params))
    got = await outputs(bulk, manifest)
    # female: every third (pa0, pa3, pb0, pb3), and pa1, pa2 by id
    assert sorted(ids(got["Patient"])) == ["pa0", "pa1", "pa2", "pa3", "pb0", "pb3"]
    assert len(got["Observation"]) == 10  # no filter for Observation: all of them


async def test_kickoff_errors_are_located_400s(bulk):
    cases = [
        ({}, {"Prefer": ""}, "Prefer"),
        ({"_outputFormat": "text/csv"}, ASYNC, "_outputFormat"),
        ({"_type": "Nonsense"}, ASYNC, "_type"),
        ({"_typeFilter": "Patient?nonsense-param=1"}, ASYNC, None),
        ({"_typeFilter": "gender=female"}, ASYNC, "_typeFilter"),
        ({"_elements": "id"}, ASYNC, "_elements"),
        ({"_since": "yesterday"}, ASYNC, "_since"),
    ]
    for params, headers, where in cases:
        r = await bulk.get("/$export", params=params, headers=headers)
        assert r.status_code == 400, (params, r.text)
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        if where:
            assert outcome["issue"][0]["expression"] == [where], (params, outcome)
    r = await bulk.get("/Patient/$export", params={"_type": "Organization"}, headers=ASYNC)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["_type"]
    assert (await bulk.get("/Group/nope/$export", headers=ASYNC)).status_code == 404
    assert (await bulk.get("/Patient/p1/$export", headers=ASYNC)).status_code == 404
    assert (await bulk.get("/Observation/$export", headers=ASYNC)).status_code == 404


async def test_lenient_handling_ignores_unsupported_parameters_and_says_so(bulk):
    await load(bulk, 2, obs_per=0)
    headers = {"Prefer": "respond-async, handling=lenient"}
    status = await kickoff(bulk, params={"_elements": "id", "_type": "Patient"}, headers=headers)
    manifest = await wait(bulk, status)
    assert [o["count"] for o in manifest["output"]] == [2]
    [error] = manifest["error"]
    assert error["type"] == "OperationOutcome"
    [outcome] = await lines(bulk, error["url"])
    assert outcome["issue"][0]["severity"] == "warning"
    assert "_elements" in outcome["issue"][0]["diagnostics"]


async def test_post_parameters_kickoff(bulk):
    await load(bulk, 3, obs_per=1)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Observation"},
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
        ],
    }
    r = await bulk.post("/$export", json=body, headers=ASYNC)
    assert r.status_code == 202, r.text
    manifest = await wait(bulk, r.headers["content-location"])
    assert {o["type"] for o in manifest["output"]} == {"Observation"}
    assert sum(o["count"] for o in manifest["output"]) == 3


async def test_patient_and_group_level(bulk):
    pids, _ = await load(bulk, 5, obs_per=2)
    org = {"resourceType": "Organization", "id": "org1", "name": "卫生院"}
    await bulk.put("/Organization/org1", json=org)
    household = {
        "resourceType": "Group",
        "id": "household-1",
        "type": "person",
        "actual": True,
        "name": "张家户",
        "member": [
            {"entity": {"reference": "Patient/p1"}},
            {"entity": {"reference": "Patient/p3"}},
            {"entity": {"reference": "Patient/p4"}, "inactive": True},
        ],
    }
    assert (await bulk.put("/Group/household-1", json=household)).status_code == 201

    manifest = await wait(bulk, await kickoff(bulk, "/Group/household-1/$export"))
    got = await outputs(bulk, manifest)
    assert sorted(ids(got["Patient"])) == ["p1", "p3"]
    assert sorted(ids(got["Observation"])) == ["o2", "o3", "o6", "o7"]
    # the compartment's types only: no Organization; the household itself is in its members'
    # compartments (Group.member)
    assert set(got) == {"Patient", "Observation", "Group"}

    params = {"_type": "Observation"}
    manifest = await wait(bulk, await kickoff(bulk, "/Patient/$export", params=params))
    got = await outputs(bulk, manifest)
    assert len(got["Observation"]) == 10

    manifest = await wait(bulk, await kickoff(bulk, "/Patient/$export"))
    got = await outputs(bulk, manifest)
    assert sorted(ids(got["Patient"])) == sorted(pids)
    assert "Organization" not in got and "Group" in got  # Group.member is compartment
    # the `patient` parameter narrows a Group export (POST, as the IG defines it)
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/p3"}}],
    }
    r = await bulk.post("/Group/household-1/$export", json=body, headers=ASYNC)
    manifest = await wait(bulk, r.headers["content-location"])
    got = await outputs(bulk, manifest)
    assert ids(got["Patient"]) == ["p3"]
    assert sorted(ids(got["Observation"])) == ["o6", "o7"]


async def test_cancel_deletes_the_job_and_its_files(bulk, bulk_app):
    await load(bulk, 30, obs_per=3)
    status_url = await kickoff(bulk)
    r = await bulk.delete(status_url)
    assert r.status_code == 202
    assert (await bulk.get(status_url)).status_code == 404
    assert (await bulk.delete(status_url)).status_code == 404
    await asyncio.sleep(0.5)  # a slice in flight stops at its next commit
    engine = bulk_app.state.core.store.engine
    async with engine.connect() as conn:
        assert (await conn.execute(bulk_jobs.select())).first() is None
        assert (await conn.execute(bulk_chunks.select())).first() is None
    # a completed job's files go with it
    manifest = await wait(bulk, status_url := await kickoff(bulk, params={"_type": "Patient"}))
    url = manifest["output"][0]["url"]
    assert (await bulk.get(url)).status_code == 200
    assert (await bulk.delete(status_url)).status_code == 202
    r = await bulk.get(url)
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


async def test_expired_jobs_answer_404_and_are_swept(bulk, bulk_app):
    await load(bulk, 2, obs_per=0)
    status_url = await kickoff(bulk, params={"_type": "Patient"})
    manifest = await wait(bulk, status_url)
    engine = bulk_app.state.core.store.engine
    async with engine.begin() as conn:
        await conn.execute(update(bulk_jobs).values(expires_at=clock.now_us() - 1))
    assert (await bulk.get(status_url)).status_code == 404
    assert (await bulk.get(manifest["output"][0]["url"])).status_code == 404
    assert await Jobs(engine).expire() == 1
    async with engine.connect() as conn:
        assert (await conn.execute(bulk_chunks.select())).first() is None


async def test_too_many_jobs_per_client_is_429(bulk, bulk_app):
    await load(bulk, 1, obs_per=0)
    limit = bulk_app.state.settings.bulk_max_jobs_per_client
    runner = bulk_app.state.background  # stop the runner: jobs stay queued
    part = next(p for p in runner if p.name == "bulk")
    part.stopping.set()
    await asyncio.sleep(0.3)
    try:
        started = [await kickoff(bulk, params={"_type": "Patient"}) for _ in range(limit)]
        r = await bulk.get("/$export", headers=ASYNC)
        assert r.status_code == 429 and r.headers["retry-after"]
        for url in started:
            assert (await bulk.delete(url)).status_code == 202
    finally:
        await part.stop()
        await part.start()


async def test_deleted_resources_are_not_exported(bulk):
    await bulk.post("/", json=put_bundle([{"resourceType": "Patient", "id": "gone"}]))
    await bulk.delete("/Patient/gone")
    await load(bulk, 1, obs_per=0)
    manifest = await wait(bulk, await kickoff(bulk, params={"_type": "Patient"}))
    got = await outputs(bulk, manifest)
    assert ids(got["Patient"]) == ["p0"]


DIVISION = "https://fhir.jtys.cn/StructureDefinition/cn-admin-division"
GB_2260 = "https://fhir.jtys.cn/CodeSystem/gb-t-2260"


def _in_division(pid: str, code: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "李", "given": ["四"]}],
        "address": [{"extension": [{"url": DIVISION, "valueCode": code}], "text": "住址"}],
    }


def _division(code: str, exclude: bool = False) -> dict:
    return {
        "code": {"text": "辖区"},
        "valueCodeableConcept": {"coding": [{"system": GB_2260, "code": code}]},
        "exclude": exclude,
    }


async def test_group_of_a_districts_residents_by_its_characteristics(bulk):
    homes = {"d1": "410105", "d2": "410105", "d3": "410102", "d4": "440103"}
    residents = [_in_division(pid, code) for pid, code in homes.items()]
    obs = [observation(i, pid, "d") for i, pid in enumerate(homes)]
    r = await bulk.post("/", json=put_bundle([*residents, *obs]))
    assert r.status_code == 200, r.text
    city = {
        "resourceType": "Group",
        "id": "zhengzhou",
        "type": "person",
        "actual": False,
        "name": "郑州市居民",
        "characteristic": [_division("410100"), _division("410102", exclude=True)],
    }
    assert (await bulk.put("/Group/zhengzhou", json=city)).status_code == 201, r.text
    manifest = await wait(bulk, await kickoff(bulk, "/Group/zhengzhou/$export"))
    got = await outputs(bulk, manifest)
    assert sorted(ids(got["Patient"])) == ["d1", "d2"]  # in 4101…, not in 410102
    assert sorted(o["subject"]["reference"] for o in got["Observation"]) == [
        "Patient/d1",
        "Patient/d2",
    ]
    unknown = {
        **city,
        "id": "odd",
        "characteristic": [{"code": {"text": "x"}, "valueBoolean": True, "exclude": False}],
    }
    assert (await bulk.put("/Group/odd", json=unknown)).status_code == 201
    r = await bulk.get("/Group/odd/$export", headers=ASYNC)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Group.characteristic[0]"]
