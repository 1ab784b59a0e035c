"""The whole two-way referral loop with authentication on: a family-doctor team's client and a
hospital's client, each with its own credentials and access policy, drive it through the API;
each side may take only its own steps; every Task version leaves its event."""

from __future__ import annotations

import contextlib

import httpx

from tests.auth.conftest import BASE, bearer, token_for
from tests.policy.builders import DIVISIONS, Region, contract, ext, patient, post
from tests.policy.test_referral_rules import (
    appointment,
    referral,
    reserved,
    schedule,
    slots,
    step,
    task_of,
)

TEAM_ORG = "Organization/gz-chc"
HOSPITAL = "Organization/gz-hospital"


@contextlib.asynccontextmanager
async def acting(auth_app, http, client):
    token = await token_for(http, client)
    transport = httpx.ASGITransport(app=auth_app)
    headers = {**bearer(token), "content-type": "application/fhir+json"}
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers=headers, timeout=60
    ) as c:
        yield c


async def put_org(c: httpx.AsyncClient, ref: str, name: str) -> None:
    rid = ref.split("/")[1]
    body = {
        "resourceType": "Organization",
        "id": rid,
        "name": name,
        "address": [{"extension": [ext("cn-admin-division", valueCode=DIVISIONS["guangzhou"])]}],
    }
    r = await c.put(f"/Organization/{rid}", json=body)
    assert r.status_code in (200, 201), r.text


async def test_up_and_down_between_a_team_and_a_hospital(auth_app, app, http, register):
    events: list = []

    async def seen(event) -> None:
        events.append(event)

    # Every relay on this database takes its share of the outbox (the session's plain app has
    # one too, on the same database): listen to all of them.
    for relay in {id(a.state.relay): a.state.relay for a in (auth_app, app)}.values():
        relay.bus.subscribe(seen)
    admin = await register("admin", "Organization/gateway")
    async with acting(auth_app, http, admin) as c:
        await put_org(c, TEAM_ORG, "越秀区某社区卫生服务中心")
        await put_org(c, HOSPITAL, "广州市某三甲医院")
        # the platform keeps the register of teams (a CareTeam is a compartment type: an
        # institution's client may not write one by having written it)
        region = await Region.make(c, "guangzhou", org=TEAM_ORG)
    team_client = await register("primary-care", TEAM_ORG)
    hospital_client = await register("hospital", HOSPITAL)
    async with (
        acting(auth_app, http, team_client) as team,
        acting(auth_app, http, hospital_client) as hospital,
    ):
        resident = await patient(team)
        await post(team, contract(resident, region))
        # the hospital does not see the resident before a referral
        assert (await hospital.get(f"/{resident}")).status_code == 404

        up = await post(team, referral(resident, region.doctor, HOSPITAL))
        task = await task_of(hospital, up["id"])
        assert task["owner"]["reference"] == HOSPITAL
        assert (await hospital.get(f"/{resident}")).status_code == 200

        # each side its own steps
        r = await hospital.put(f"/Task/{task['id']}", json=step(task, "cancelled", "cancelled"))
        assert r.status_code == 403, r.text
        r = await team.put(f"/Task/{task['id']}", json=step(task, "accepted", "accepted"))
        assert r.status_code == 403, r.text
        r = await hospital.put(f"/Task/{task['id']}", json=step(task, "accepted", "accepted"))
        assert r.status_code == 200, r.text
        task = r.json()

        # a reserved expert slot for the accepted referral
        made = await slots(hospital, await schedule(hospital, HOSPITAL, "expert"), "expert", 5)
        slot = next(s for s in made if reserved(s))
        booked = await post(hospital, appointment(resident, slot, f"ServiceRequest/{up['id']}"))
        assert booked["status"] == "booked"
        assert (await team.get(f"/Slot/{slot['id']}")).json()["status"] == "busy"

        for status, business in [
            ("accepted", "appointment-booked"),
            ("in-progress", "arrived"),
            ("completed", "referred-down"),
        ]:
            task = step(task, status, business)
            if status == "completed":
                task["output"] = [
                    {
                        "type": {"text": "诊疗反馈"},
                        "valueString": "冠脉造影未见明显狭窄，建议基层继续降压治疗",
                    }
                ]
            r = await hospital.put(f"/Task/{task['id']}", json=task)
            assert r.status_code == 200, (status, r.text)
            task = r.json()

        # down: back to the contract's team, which accepts it
        down = await post(
            hospital,
            referral(
                resident,
                HOSPITAL,
                None,
                direction="down",
                basedOn=[{"reference": f"ServiceRequest/{up['id']}"}],
            ),
        )
        assert down["performer"] == [{"reference": region.doctor}]
        back = await task_of(team, down["id"])
        assert back["owner"]["reference"] == TEAM_ORG
        r = await hospital.put(f"/Task/{back['id']}", json=step(back, "accepted", "accepted"))
        assert r.status_code == 403, r.text
        r = await team.put(f"/Task/{back['id']}", json=step(back, "accepted", "accepted"))
        assert r.status_code == 200, r.text

        # the whole episode in one call, as either side sees it
        for side in (team, hospital):
            r = await side.get(f"/ServiceRequest/{up['id']}/$episode")
            assert r.status_code == 200, r.text
            urls = [e["fullUrl"].removeprefix(BASE + "/") for e in r.json()["entry"]]
            assert urls[0] == f"ServiceRequest/{up['id']}"
            assert [u for u in urls if u.startswith(f"Task/{task['id']}/_history/")] == [
                f"Task/{task['id']}/_history/{v}" for v in range(5, 0, -1)
            ]
            assert f"Appointment/{booked['id']}" in urls
            assert f"ServiceRequest/{down['id']}" in urls
            assert f"Task/{back['id']}/_history/2" in urls

    # every version of the up-referral's Task reached an event bus, once
    await auth_app.state.relay.drain()
    mine = sorted(
        (e.version, e.action) for e in events if e.res_type == "Task" and e.res_id == task["id"]
    )
    last = int(task["meta"]["versionId"])
    assert mine == [(1, "create")] + [(v, "update") for v in range(2, last + 1)]
