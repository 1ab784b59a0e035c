"""Mutual recognition of results through the API, on SQLite and PostgreSQL: the mark the
gateway sets on write, and `$recognized-results` for a patient with results from three
Guangzhou institutions of different levels (a community centre, a district hospital whose lab
qualification lapsed, a city hospital), seen from each of them, and every reason."""

from __future__ import annotations

from typing import Any

import httpx

from tests.policy.builders import BASE, coding, ext, patient, post

LOINC = "http://loinc.org"
HBA1C, CREATININE, ALT, XRAY = "4548-4", "2160-0", "1742-6", "36643-5"
MARK = f"{BASE}/StructureDefinition/cn-result-recognition"


def qualification(start: str, end: str, passed: bool = True) -> dict[str, Any]:
    return ext(
        "cn-lab-qualification",
        extension=[
            {"url": "program", "valueCoding": coding("lab-qualification-program", "eqa")},
            {"url": "period", "valuePeriod": {"start": start, "end": end}},
            {"url": "passed", "valueBoolean": passed},
        ],
    )


async def institution(
    client: httpx.AsyncClient,
    name: str,
    level: str,
    division: str,
    qualified: tuple[str, str] | None = None,
    part_of: str | None = None,
) -> str:
    extensions = [ext("cn-institution-level", valueCoding=coding("institution-level", level))]
    if qualified:
        extensions.append(qualification(*qualified))
    body: dict[str, Any] = {
        "resourceType": "Organization",
        "extension": extensions,
        "name": name,
        "address": [{"extension": [ext("cn-admin-division", valueCode=division)]}],
    }
    if part_of:
        body["partOf"] = {"reference": part_of}
    return f"Organization/{(await post(client, body))['id']}"


async def alliance(client: httpx.AsyncClient) -> str:
    body = {
        "resourceType": "Organization",
        "type": [{"coding": [coding("institution-kind", "medical-alliance")]}],
        "name": "医联体",
    }
    return f"Organization/{(await post(client, body))['id']}"


def observation(subject: str, code: str, day: str, performer: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": f"{day}T08:00:00+08:00",
        "performer": [{"reference": performer}],
        **more,
    }


def mark_of(resource: dict[str, Any]) -> str | None:
    for e in resource.get("extension") or []:
        if e["url"] == MARK:
            return str(e["valueCoding"]["code"])
    return None


class Town:
    """Three institutions of Guangzhou and one patient's results from each."""

    async def make(self, client: httpx.AsyncClient) -> Town:
        self.community = await institution(
            client, "社区卫生服务中心", "1A", "440104", ("2026-01-01", "2026-12-31")
        )
        self.district = await institution(  # its 室间质评 lapsed at the end of March
            client, "区人民医院", "2A", "440105", ("2025-04-01", "2026-03-31")
        )
        self.city = await institution(
            client, "市第一人民医院", "3A", "440106", ("2026-01-01", "2026-12-31")
        )
        self.patient = await patient(client)
        p = self.patient
        self.results = {
            "city": await post(client, observation(p, HBA1C, "2026-03-01", self.city)),
            "district": await post(client, observation(p, HBA1C, "2026-04-20", self.district)),
            "community": await post(client, observation(p, HBA1C, "2026-05-01", self.community)),
            "creatinine": await post(client, observation(p, CREATININE, "2026-03-01", self.city)),
            "alt": await post(client, observation(p, ALT, "2026-05-10", self.district)),
        }
        return self


async def recognized(
    client: httpx.AsyncClient, town: Town, requester: str, codes: str, day: str = "2026-05-15"
) -> list[dict[str, Any]]:
    pid = town.patient.split("/")[1]
    r = await client.get(
        f"/Patient/{pid}/$recognized-results",
        params={"requester": requester, "code": codes, "date": day},
    )
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "collection"
    return [e["resource"] for e in bundle["entry"]]


def reason(entry: dict[str, Any]) -> str:
    assert entry["resourceType"] == "OperationOutcome", entry
    issue = entry["issue"][0]
    assert issue["severity"] == "information" and issue["code"] == "not-found"
    return str(issue["details"]["coding"][1]["code"])


async def test_the_gateway_sets_the_mark_on_write(client: httpx.AsyncClient) -> None:
    town = await Town().make(client)
    assert mark_of(town.results["city"]) == "region"
    assert mark_of(town.results["community"]) == "region"
    assert mark_of(town.results["district"]) is None  # after its qualification lapsed
    # a mark the client set is the gateway's to decide: removed here
    claimed = observation(town.patient, HBA1C, "2026-05-02", town.district)
    claimed["extension"] = [
        ext("cn-result-recognition", valueCoding=coding("result-recognition", "region"))
    ]
    made = await post(client, claimed)
    assert mark_of(made) is None
    stored = (await client.get(f"/Observation/{made['id']}")).json()
    assert mark_of(stored) is None
    # an item off the list carries none, however good the lab
    assert (
        mark_of(await post(client, observation(town.patient, "99999-9", "2026-05-01", town.city)))
        is None
    )


async def test_the_mark_through_a_practitioner_role_and_an_alliance(
    client: httpx.AsyncClient,
) -> None:
    group = await alliance(client)
    lab = await institution(
        client, "乡镇卫生院", "1B", "410102", ("2026-01-01", "2026-12-31"), group
    )
    hospital = await institution(client, "市中心医院", "3A", "440106", None, group)
    practitioner = await post(
        client, {"resourceType": "Practitioner", "name": [{"text": "检验师"}]}
    )
    role = await post(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{practitioner['id']}"},
            "organization": {"reference": lab},
        },
    )
    subject = await patient(client)
    made = await post(
        client, observation(subject, HBA1C, "2026-05-01", f"PractitionerRole/{role['id']}")
    )
    assert mark_of(made) == "alliance"
    # the alliance's level-3 hospital in another province accepts its level-1 member's result
    town = Town()
    town.patient = subject
    [entry] = await recognized(client, town, hospital, f"{LOINC}|{HBA1C}")
    assert entry["id"] == made["id"]


async def test_each_requester_gets_the_result_it_must_accept(client: httpx.AsyncClient) -> None:
    town = await Town().make(client)
    ids = {k: v["id"] for k, v in town.results.items()}
    # the community centre: its own, most recent result (same level)
    [entry] = await recognized(client, town, town.community, f"{LOINC}|{HBA1C}")
    assert entry["id"] == ids["community"]
    # the district and city hospitals: not the community's (lower level), not the district's
    # (lab not qualified then): the city hospital's
    for requester in (town.district, town.city):
        [entry] = await recognized(client, town, requester, f"{LOINC}|{HBA1C}")
        assert entry["id"] == ids["city"]


async def test_every_reason(client: httpx.AsyncClient) -> None:
    town = await Town().make(client)
    entries = await recognized(
        client, town, town.community, f"{LOINC}|99999-9,{LOINC}|{CREATININE},{LOINC}|{ALT}"
    )
    assert [reason(e) for e in entries] == ["not-recognisable", "expired", "lab-not-qualified"]
    assert "超过互认有效期" in entries[1]["issue"][0]["diagnostics"]
    # before the city's result is 90 days old the city hospital accepts it; after, none
    [late] = await recognized(client, town, town.city, HBA1C, day="2026-07-01")
    assert reason(late) == "hierarchy"  # the most recent candidate: the community's
    zhengzhou = await institution(client, "郑州医院", "3A", "410102")
    [outside] = await recognized(client, town, zhengzhou, HBA1C)
    assert reason(outside) == "outside-scope"
    # no result of a recognisable test at all
    [none] = await recognized(client, town, town.city, f"{LOINC}|{XRAY}")
    assert none["resourceType"] == "OperationOutcome"
    # results after the day of the decision are not candidates (the community's of 1 May);
    # the district's is passed over (lab not qualified then): the city's
    [early] = await recognized(client, town, town.community, HBA1C, day="2026-04-25")
    assert early["id"] == town.results["city"]["id"]


async def test_bad_calls(client: httpx.AsyncClient) -> None:
    town = await Town().make(client)
    pid = town.patient.split("/")[1]
    base = f"/Patient/{pid}/$recognized-results"
    assert (await client.get(base, params={"code": HBA1C})).status_code == 400
    assert (await client.get(base, params={"requester": town.city})).status_code == 400
    bad_day = {"requester": town.city, "code": HBA1C, "date": "soon"}
    assert (await client.get(base, params=bad_day)).status_code == 400
    unknown = {"requester": "Organization/nope", "code": HBA1C}
    assert (await client.get(base, params=unknown)).status_code == 400
    missing = await client.get("/Patient/nope/$recognized-results", params=unknown)
    assert missing.status_code == 404
