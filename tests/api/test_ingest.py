"""POST /fhir/$ingest on SQLite and PostgreSQL: records mapped, validated, checked by the
contract rules and stored one transaction each (or all at once), re-sends updating, problems
named by record number and Chinese field name; and CarePlan/{id}/$native reading back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.bench.ingest_data import World, csv_bytes, id_card, world

JSON = {"content-type": "application/json"}


def outcome(r) -> dict[str, Any]:
    """$ingest's Parameters as {counts…, records: [{number, key, status, created, updated,
    issues}]}."""
    body = r.json()
    assert body["resourceType"] == "Parameters", body
    out: dict[str, Any] = {"records": [], "notes": []}
    for p in body["parameter"]:
        if "valueInteger" in p:
            out[p["name"]] = p["valueInteger"]
        elif p["name"] == "record":
            rec: dict[str, Any] = {"created": [], "updated": [], "issues": []}
            for part in p["part"]:
                if part["name"] in ("created", "updated"):
                    rec[part["name"]].append(part["valueReference"]["reference"])
                elif part["name"] == "outcome":
                    rec["issues"] = part["resource"]["issue"]
                else:
                    rec[part["name"]] = next(v for k, v in part.items() if k.startswith("value"))
            out["records"].append(rec)
        elif p["name"] == "outcome":
            out["notes"] = p["resource"]["issue"]
    return out


async def ingest(client, source: str, records: Any, **params) -> dict[str, Any]:
    r = await client.post("/$ingest", params={"source": source, **params}, json=records)
    assert r.status_code == 200, r.text
    return outcome(r)


async def count(client, query: str) -> int:
    # In the URL itself: httpx's `params=` replaces a query the URL already has.
    r = await client.get(f"/{query}{'&' if '?' in query else '?'}_summary=count")
    assert r.status_code == 200, r.text
    return r.json()["total"]


async def district(client, w: World) -> None:
    """Institutions, staff, teams and residents in, every one stored."""
    for source, records in (
        ("institution", w.institutions),
        ("practitioner", w.practitioners),
        ("team", w.teams),
        ("resident", w.residents),
    ):
        result = await ingest(client, source, records)
        assert result["rejected"] == 0, result["records"]


async def test_contracts_are_stored_with_their_consent(client):
    w = world(residents=6, teams=1)
    await district(client, w)
    result = await ingest(client, "contract", w.contracts)
    assert (result["stored"], result["updated"], result["rejected"]) == (6, 0, 0)
    first = result["records"][0]
    assert first["number"] == 1 and first["key"] == w.contracts[0]["签约编号"]
    assert first["status"] == "stored" and len(first["created"]) == 2
    assert await count(client, "CarePlan") == 6 and await count(client, "Consent") == 6
    r = await client.get(f"/{first['created'][0]}")
    plan = r.json()
    assert plan["subject"]["reference"].startswith("Patient/")
    assert plan["careTeam"][0]["reference"].startswith("CareTeam/")
    assert plan["author"]["reference"].startswith("PractitionerRole/")
    assert plan["extension"][0]["valueCoding"]["code"] == "new"
    assert (await client.get(f"/{first['created'][1]}")).json()["extension"][0]["valueReference"][
        "reference"
    ] == first["created"][0]


async def test_resending_updates_and_never_duplicates(client):
    w = world(residents=6, teams=1)
    await district(client, w)
    await ingest(client, "contract", w.contracts)
    again = await ingest(client, "resident", w.residents)
    assert (again["stored"], again["updated"]) == (0, 6)
    again = await ingest(client, "contract", w.contracts)
    assert (again["stored"], again["updated"], again["rejected"]) == (0, 6, 0)
    for query, n in (
        ("Patient", 6),
        ("Group", 2),
        ("CarePlan", 6),
        ("Consent", 6),
        ("CareTeam", 1),
    ):
        assert await count(client, query) == n, query
    groups = (await client.get("/Group")).json()["entry"]
    assert sorted(g["resource"]["quantity"] for g in groups) == [3, 3]


async def test_problems_name_the_record_and_the_field(client):
    w = world(residents=4, teams=1)
    await district(client, w)
    contracts = w.contracts
    contracts[0]["签约类型"] = "新新签"
    contracts[1]["开始日期"] = "2026-13-01"
    del contracts[2]["责任医生工号"]
    contracts[3]["证件号码"] = id_card("410103", w.contracts[3]["开始日期"] and _date(), 1, True)
    result = await ingest(client, "contract", contracts)
    assert result["rejected"] == 4
    locations = [r["issues"][0]["location"] for r in result["records"]]
    assert locations[0] == ["record[1].签约类型"]
    assert locations[1] == ["record[2].开始日期"]
    assert locations[2] == ["record[3].责任医生工号"]
    assert "record[4].证件号码" in locations[3]  # the resident named matches no Patient
    assert "matches 0 resources" in result["records"][3]["issues"][0]["diagnostics"]
    assert await count(client, "CarePlan") == 0


def _date():
    from datetime import date

    return date(1990, 1, 1)


async def test_validation_problems_map_back_to_the_field(client):
    w = world(residents=4, teams=1)  # the first and the fourth head their households
    resident = dict(w.residents[0])
    resident["身份证号"] = resident["身份证号"][:-1] + (
        "0" if resident["身份证号"][-1] != "0" else "1"
    )
    resident["行政区划代码"] = "999999"
    result = await ingest(client, "resident", [resident, w.residents[3]], offset=40)
    bad, good = result["records"]
    assert (bad["number"], bad["status"], good["status"]) == (41, "rejected", "stored")
    locations = {loc for issue in bad["issues"] for loc in issue["location"]}
    assert "record[41].证件号码" in locations  # cnp-1: the GB 11643 check character
    assert "record[41].行政区划代码" in locations  # cnad-1: not a division
    assert all(issue.get("expression") for issue in bad["issues"])


async def test_contract_rules_reject_a_second_contract(client):
    w = world(residents=2, teams=1)
    await district(client, w)
    second = dict(w.contracts[1], 证件号码=w.contracts[0]["证件号码"])
    result = await ingest(client, "contract", [w.contracts[0], second])
    assert [r["status"] for r in result["records"]] == ["stored", "rejected"]
    issue = result["records"][1]["issues"][0]
    assert issue["code"] == "conflict" and "already has a contract in force" in issue["diagnostics"]
    assert issue["location"][0].startswith("record[2]")
    assert await count(client, "CarePlan") == 1


async def test_atomic_mode_stores_all_or_nothing(client):
    w = world(residents=4, teams=1)
    await district(client, w)
    spoilt = [dict(c) for c in w.contracts]
    spoilt[2]["状态"] = "已解约"  # without 解约日期 and 解约原因
    r = await client.post("/$ingest", params={"source": "contract", "mode": "atomic"}, json=spoilt)
    assert r.status_code == 422
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert {loc for i in body["issue"] for loc in i["location"]} == {
        "record[3].解约日期",
        "record[3].解约原因",
    }
    assert await count(client, "CarePlan") == 0
    # A rule broken inside the one transaction rolls every record back.
    twice = [*w.contracts, dict(w.contracts[1], 签约编号="QY-TWICE")]
    r = await client.post("/$ingest", params={"source": "contract", "mode": "atomic"}, json=twice)
    assert r.status_code == 409, r.text
    assert "already has a contract in force" in r.text
    assert await count(client, "CarePlan") == 0 and await count(client, "Consent") == 0
    result = outcome(
        await client.post(
            "/$ingest", params={"source": "contract", "mode": "atomic"}, json=w.contracts
        )
    )
    assert (result["stored"], result["rejected"]) == (4, 0)
    assert await count(client, "CarePlan") == 4


async def test_atomic_mode_merges_a_household_across_records(client):
    w = world(residents=3, teams=1)
    r = await client.post(
        "/$ingest", params={"source": "resident", "mode": "atomic"}, json=w.residents
    )
    assert r.status_code == 200, r.text
    group = (await client.get("/Group")).json()["entry"]
    assert len(group) == 1 and group[0]["resource"]["quantity"] == 3


@pytest.mark.parametrize("charset", ["utf-8", "gb18030"])
async def test_csv_bodies(client, charset):
    w = world(residents=3, teams=1)
    body = csv_bytes("resident", w.residents, charset)
    r = await client.post(
        "/$ingest",
        params={"source": "resident"},
        content=body,
        headers={"content-type": f"text/csv; charset={charset}"},
    )
    assert r.status_code == 200, r.text
    assert outcome(r)["stored"] == 3
    names = sorted(
        e["resource"]["name"][0]["text"] for e in (await client.get("/Patient")).json()["entry"]
    )
    assert names == sorted(x["姓名"] for x in w.residents)
    r = await client.post(  # no charset named: GB18030 recognised
        "/$ingest",
        params={"source": "resident"},
        content=body,
        headers={"content-type": "text/csv"},
    )
    assert outcome(r)["updated"] == 3


async def test_the_request_itself_wrong(client):
    r = await client.post("/$ingest", json=[])
    assert r.status_code == 400 and "needs source" in r.text
    r = await client.post("/$ingest", params={"source": "diagnosis"}, json=[])
    assert r.status_code == 404 and "resident" in r.text
    r = await client.post("/$ingest", params={"source": "resident"}, content=b"[{", headers=JSON)
    assert r.status_code == 400 and "cannot be read" in r.text
    r = await client.post("/$ingest", params={"source": "resident", "mode": "all"}, json=[])
    assert r.status_code == 400
    r = await client.get("/$ingest", params={"source": "resident"})
    assert r.status_code == 405


async def test_unknown_columns_are_noted(client):
    w = world(residents=1, teams=1)
    result = await ingest(client, "resident", [dict(w.residents[0], 民族="汉族")])
    assert result["stored"] == 1
    assert [n["diagnostics"] for n in result["notes"]] == [
        "'民族' is not a field of mapping resident: ignored"
    ]


async def test_household_members_accumulate_in_any_order(client):
    w = world(residents=3, teams=1)
    head, spouse, child = w.residents
    # The spouse's record comes first and names the head by number.
    await ingest(
        client, "resident", [dict(spouse, 户主证件号码=head["身份证号"], 户主姓名=head["姓名"])]
    )
    group = (await client.get("/Group")).json()["entry"][0]["resource"]
    assert group["quantity"] == 2 and "reference" not in group["member"][1]["entity"]
    await ingest(client, "resident", [head])
    await ingest(client, "resident", [child])
    group = (await client.get("/Group")).json()["entry"][0]["resource"]
    assert group["quantity"] == 3
    assert all(m["entity"]["reference"].startswith("Patient/") for m in group["member"])


async def test_concurrent_records_of_one_household_keep_every_member(client, app):
    w = world(residents=12, teams=1)
    household = w.residents[0]["家庭编号"]
    members = [dict(r, 家庭编号=household, 与户主关系="子") for r in w.residents[1:]]
    await ingest(client, "resident", [w.residents[0]])
    results = await asyncio.gather(*(ingest(client, "resident", [m]) for m in members))
    assert all(r["stored"] == 1 for r in results), results
    groups = (
        await client.get(
            "/Group", params={"identifier": f"https://fhir.jtys.cn/sid/household|{household}"}
        )
    ).json()["entry"]
    assert len(groups) == 1 and groups[0]["resource"]["quantity"] == 12


async def test_native_reads_the_contract_back(client):
    w = world(residents=1, teams=1)
    await district(client, w)
    contract = dict(w.contracts[0], 医保授权="否")
    result = await ingest(client, "contract", [contract])
    plan = result["records"][0]["created"][0]
    r = await client.get(f"/{plan}/$native")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    record = r.json()
    for field in (
        "签约编号",
        "证件号码",
        "团队编号",
        "责任医生工号",
        "开始日期",
        "医保授权",
        "协议模板",
    ):
        assert record[field] == contract[field], field
    assert record["签约类型"] == "新签" and record["状态"] == "已签约"
    assert record["签约日期"] == "2025-12-20T09:30:00+08:00"
    assert (await client.get(f"/{plan}/$native", params={"source": "resident"})).status_code == 400
    assert (await client.get("/CarePlan/nope/$native")).status_code == 404


class _NoTurns(dict):
    """Every writer its own lock: writers race as if each were in another process."""

    def setdefault(self, key, default=None):
        return asyncio.Lock()


async def test_writers_in_other_processes_retry_until_every_member_is_in(client, monkeypatch):
    from gateway.fhir.operations import ingest_write

    monkeypatch.setattr(ingest_write, "_turns", _NoTurns())
    w = world(residents=8, teams=1)
    household = w.residents[0]["家庭编号"]
    members = [dict(r, 家庭编号=household, 与户主关系="子") for r in w.residents[1:]]
    await ingest(client, "resident", [w.residents[0]])
    results = await asyncio.gather(*(ingest(client, "resident", [m]) for m in members))
    assert all(r["stored"] == 1 for r in results), results
    group = (await client.get("/Group")).json()["entry"]
    assert len(group) == 1 and group[0]["resource"]["quantity"] == 8


async def test_records_written_together_keep_one_transaction_per_record_outcomes(client):
    """Many records share a transaction while they can; the outcome stays the one of a
    transaction per record, in order: a rule broken by one record (whose record the store
    cannot name), an unknown resident, a renewal of a contract sent earlier in the request."""
    w = world(residents=12, teams=1)
    await district(client, w)
    contracts = [dict(c) for c in w.contracts]
    contracts[6]["证件号码"] = contracts[1]["证件号码"]  # a second contract for record 2's resident
    contracts[3]["证件号码"] = id_card("410103", _date(), 7, True)  # nobody
    old = dict(contracts[9], 签约编号="QY-OLD", 开始日期="2025-01-01", 到期日期="2025-12-31")
    contracts[9].update(签约类型="续签", 原签约编号="QY-OLD", 开始日期="2026-01-01")
    result = await ingest(client, "contract", [old, *contracts])
    statuses = [r["status"] for r in result["records"]]
    expected = ["stored"] * 13
    expected[1 + 6] = expected[1 + 3] = "rejected"
    assert statuses == expected, [
        (r["number"], r["status"], [i.get("diagnostics") for i in r["issues"]])
        for r in result["records"]
    ]
    assert "already has a contract in force" in result["records"][7]["issues"][0]["diagnostics"]
    assert result["records"][4]["issues"][0]["location"][0].startswith("record[5].证件")
    renewal = (await client.get(f"/{result['records'][10]['created'][0]}")).json()
    assert renewal["replaces"][0]["reference"] == result["records"][0]["created"][0]
