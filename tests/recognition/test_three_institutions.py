"""A resident with results from three Guangzhou institutions of different levels (a community
health centre 一级, a district hospital 二级, a city hospital 三级), with authentication on:
each institution acts with its own credentials and its role's access policy. Each sees the
resident's results from all three once the resident is theirs (the centre by contract, the
hospitals by a referral Task they own), learns which result it must accept, records its
decision, and may record only its own; the regional platform counts the decisions per hospital
and outcome; an institution the resident was never referred to sees nothing."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from tests.auth.conftest import BASE, bearer, token_for
from tests.policy.builders import Region, contract, ext, post
from tests.policy.test_recognition import HBA1C, LOINC, observation, qualification
from tests.policy.test_referral_rules import referral
from tests.recognition.decisions import OUTCOME, REASON, decision

CENTRE = "Organization/gz-yuexiu-chc"
DISTRICT = "Organization/gz-haizhu-hospital"
CITY = "Organization/gz-first-hospital"
ELSEWHERE = "Organization/gz-tianhe-hospital"
PLATFORM = "Organization/gz-platform"
DAY = "2026-05-15"


@contextlib.asynccontextmanager
async def acting(auth_app: Any, http: httpx.AsyncClient, client: Any):
    token = await token_for(http, client)
    headers = {**bearer(token), "content-type": "application/fhir+json"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=auth_app), base_url=BASE, headers=headers, timeout=60
    ) as c:
        yield c


async def put_org(
    c: httpx.AsyncClient, ref: str, name: str, level: str | None, division: str = "440104"
) -> None:
    rid = ref.split("/")[1]
    extension = []
    if level:
        extension = [
            ext(
                "cn-institution-level",
                valueCoding={"system": f"{_CS}/institution-level", "code": level},
            ),
            qualification("2026-01-01", "2026-12-31"),
        ]
    body = {
        "resourceType": "Organization",
        "id": rid,
        "name": name,
        "address": [{"extension": [ext("cn-admin-division", valueCode=division)]}],
        **({"extension": extension} if extension else {}),
    }
    r = await c.put(f"/Organization/{rid}", json=body)
    assert r.status_code in (200, 201), r.text


_CS = "https://fhir.jtys.cn/CodeSystem"


async def doctor(c: httpx.AsyncClient, org: str, name: str) -> str:
    made = await post(c, {"resourceType": "Practitioner", "name": [{"text": name}]})
    role = await post(
        c,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{made['id']}"},
            "organization": {"reference": org},
        },
    )
    return f"PractitionerRole/{role['id']}"


async def recognized(c: httpx.AsyncClient, resident: str, requester: str) -> httpx.Response:
    return await c.get(
        f"/{resident}/$recognized-results",
        params={"requester": requester, "code": f"{LOINC}|{HBA1C}", "date": DAY},
    )


async def total(c: httpx.AsyncClient, path: str, **params: str) -> int:
    r = await c.get(path, params={**params, "_summary": "count"})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_three_institutions_each_with_its_own_credentials(auth_app, http, register):
    admin = await register("admin", "Organization/gateway")
    async with acting(auth_app, http, admin) as c:
        await put_org(c, CENTRE, "越秀区某社区卫生服务中心", "1A", "440104")
        await put_org(c, DISTRICT, "海珠区某人民医院", "2A", "440105")
        await put_org(c, CITY, "广州市第一人民医院", "3A", "440106")
        await put_org(c, ELSEWHERE, "天河区某医院", "2A", "440106")
        await put_org(c, PLATFORM, "广州市区域卫生信息平台", None, "440100")
        region = await Region.make(c, "guangzhou", org=CENTRE)  # the team register
        district_doctor = await doctor(c, DISTRICT, "海珠医生")
        city_doctor = await doctor(c, CITY, "市一医生")
    clients = {
        CENTRE: await register("primary-care", CENTRE),
        DISTRICT: await register("hospital", DISTRICT),
        CITY: await register("hospital", CITY),
        ELSEWHERE: await register("hospital", ELSEWHERE),
        PLATFORM: await register("platform", PLATFORM),
    }
    async with (
        acting(auth_app, http, clients[CENTRE]) as centre,
        acting(auth_app, http, clients[DISTRICT]) as district,
        acting(auth_app, http, clients[CITY]) as city,
        acting(auth_app, http, clients[ELSEWHERE]) as elsewhere,
        acting(auth_app, http, clients[PLATFORM]) as platform,
    ):
        # the centre signs the resident and refers them up to both hospitals
        made = await post(
            centre,
            {
                "resourceType": "Patient",
                "name": [{"text": "陈秀兰"}],
                "address": [{"extension": [ext("cn-admin-division", valueCode="440104")]}],
            },
        )
        resident = f"Patient/{made['id']}"
        await post(centre, contract(resident, region))
        assert (await district.get(f"/{resident}")).status_code == 404
        await post(centre, referral(resident, region.doctor, DISTRICT))
        await post(centre, referral(resident, region.doctor, CITY))
        # each institution writes its own HbA1c result, with its own credentials
        mine = {
            CITY: await post(city, observation(resident, HBA1C, "2026-05-01", CITY)),
            DISTRICT: await post(district, observation(resident, HBA1C, "2026-05-05", DISTRICT)),
            CENTRE: await post(centre, observation(resident, HBA1C, "2026-05-10", CENTRE)),
        }
        ids = {org: made["id"] for org, made in mine.items()}
        # each sees the results of all three
        sides = {CENTRE: centre, DISTRICT: district, CITY: city}
        for org, side in sides.items():
            found = (await side.get("/Observation", params={"patient": resident})).json()
            assert sorted(e["resource"]["id"] for e in found["entry"]) == sorted(ids.values()), org
        # and each must accept the most recent result of a lab not below its own level
        expected = {CENTRE: ids[CENTRE], DISTRICT: ids[DISTRICT], CITY: ids[CITY]}
        for org, side in sides.items():
            r = await recognized(side, resident, org)
            assert r.status_code == 200, r.text
            [entry] = r.json()["entry"]
            assert entry["resource"]["id"] == expected[org], org
        # the city hospital asks as if it were the centre: the centre's own result
        [entry] = (await recognized(city, resident, CENTRE)).json()["entry"]
        assert entry["resource"]["id"] == ids[CENTRE]
        # an institution the resident was never referred to sees neither them nor their results
        assert (await recognized(elsewhere, resident, ELSEWHERE)).status_code == 404
        assert await total(elsewhere, "/Observation", patient=resident) == 0

        # decisions: the centre accepts the city's result; the district repeats the centre's
        # (condition changed); the city repeats the district's before an operation
        made = [
            await post(
                centre,
                decision(f"Observation/{ids[CITY]}", resident, CENTRE, region.doctor),
            ),
            await post(
                district,
                decision(
                    f"Observation/{ids[CENTRE]}",
                    resident,
                    DISTRICT,
                    district_doctor,
                    "repeated",
                    "condition-changed",
                ),
            ),
            await post(
                city,
                decision(
                    f"Observation/{ids[DISTRICT]}",
                    resident,
                    CITY,
                    city_doctor,
                    "repeated",
                    "critical-procedure",
                ),
            ),
        ]
        assert [m["businessStatus"]["coding"][0]["code"] for m in made] == [
            "accepted",
            "repeated",
            "repeated",
        ]
        # a hospital records only its own decisions
        forged = decision(f"Observation/{ids[CITY]}", resident, CENTRE, district_doctor)
        r = await district.post("/Task", json=forged)
        assert r.status_code == 403, r.text
        assert r.json()["issue"][0]["expression"] == ["Task.owner"]
        # one over the limit of the 'other' explanation: located, nothing written
        long = decision(
            f"Observation/{ids[CITY]}", resident, DISTRICT, district_doctor, "repeated",
            "other", "复" * 201,
        )  # fmt: skip
        r = await district.post("/Task", json=long)
        assert r.status_code == 422 and r.json()["issue"][0]["expression"] == [
            "Task.statusReason.text"
        ], r.text
        # the regional platform counts decisions per hospital and outcome
        accepted, repeated = f"{OUTCOME}|accepted", f"{OUTCOME}|repeated"
        for owner, outcome, n in (
            (CENTRE, accepted, 1),
            (CENTRE, repeated, 0),
            (DISTRICT, repeated, 1),
            (CITY, repeated, 1),
            (CITY, accepted, 0),
        ):
            assert await total(platform, "/Task", owner=owner, **{"business-status": outcome}) == n
        assert await total(platform, "/Task", **{"business-status": f"{OUTCOME}|"}) == 3
        reason = f"{REASON}|critical-procedure"
        assert await total(platform, "/Task", **{"status-reason": reason}) == 1
        # every institution sees every decision about its resident; the stranger none
        for side in sides.values():
            assert (
                await total(side, "/Task", patient=resident, **{"business-status": f"{OUTCOME}|"})
                == 3
            )
        assert await total(elsewhere, "/Task", **{"business-status": f"{OUTCOME}|"}) == 0
