"""POST /fhir/$ingest?source=referral on SQLite and PostgreSQL: the regional 转诊单 and 回转单
become referral ServiceRequests, and the referral rules act on them as on any write: the three
priorities for a contracted resident's up-referral, its Task created, a down-referral routed
to the responsible doctor of the resident's contract; re-sending a form updates it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from gateway.bench.ingest_data import World, csv_bytes, id_card, world
from tests.api.test_ingest import count, district, ingest, outcome

FIXTURES = Path(__file__).resolve().parents[2] / "mappings" / "referral" / "fixtures"
HOSPITAL = "124101004000020133"
PRIORITY = "https://fhir.jtys.cn/StructureDefinition/cn-referral-priority"


def form(name: str, **fields: Any) -> dict[str, Any]:
    """A fixture form with the identities of this test's district put in."""
    record = json.loads((FIXTURES / f"{name}.input.json").read_text("utf-8"))
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


class District:
    """A community centre with a team, two residents (the first with a contract in force),
    and a hospital with a cardiologist, all stored through the other mappings."""

    def __init__(self, w: World):
        self.community = w.institutions[0]["统一社会信用代码"]
        self.doctor = w.teams[0]["成员"][0]["工号"]
        self.contract = w.contracts[0]["签约编号"]
        self.contracted, self.uncontracted = (r["身份证号"] for r in w.residents[:2])

    def up(self, number: str, resident: str, **fields: Any) -> dict[str, Any]:
        base = {
            "转诊单号": number,
            "患者证件号码": resident,
            "签约编号": self.contract if resident == self.contracted else None,
            "转出机构": self.community,
            "转出医生工号": self.doctor,
            "转入医院": HOSPITAL,
        }
        return form("up-contracted", **{**base, **fields})

    def down(self, number: str, resident: str, up: str | None, **fields: Any) -> dict[str, Any]:
        base = {
            "回转单号": number,
            "患者证件号码": resident,
            "原转诊单号": up,
            "转入机构": None,  # the gateway routes by the contract
            "接诊医生工号": None,
            "接诊医生": None,
        }
        return form("down-discharged", **{**base, **fields})


async def setup(client) -> District:
    w = world(residents=2, teams=1)
    await district(client, w)
    hospital = {
        "机构名称": "郑州市中心医院",
        "统一社会信用代码": HOSPITAL,
        "机构类别": "综合医院",
        "机构级别": "三级甲等",
        "行政区划代码": "410102",
    }
    cardiologist = {
        "工号": "XN0117",
        "执业机构": HOSPITAL,
        "姓名": "刘洋",
        "性别": "男",
        "身份证号": id_card("410103", date(1978, 5, 9), 17, True),
        "角色": "专科医生",
        "专业": "心血管内科专业",
    }
    for source, record in (("institution", hospital), ("practitioner", cardiologist)):
        assert (await ingest(client, source, [record]))["rejected"] == 0
    assert (await ingest(client, "contract", w.contracts[:1]))["stored"] == 1
    return District(w)


async def read(client, ref: str) -> dict[str, Any]:
    r = await client.get(f"/{ref}")
    assert r.status_code == 200, r.text
    return r.json()


async def tasks_of(client, ref: str) -> list[dict[str, Any]]:
    bundle = (await client.get("/Task", params={"focus": ref})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def search_one(client, query: str) -> str:
    bundle = (await client.get(f"/{query}")).json()
    assert bundle["total"] == 1, bundle
    resource = bundle["entry"][0]["resource"]
    return f"{resource['resourceType']}/{resource['id']}"


def codes(issues: list[dict[str, Any]]) -> list[str]:
    return [c["code"] for i in issues for c in (i.get("details") or {}).get("coding", [])]


async def test_up_form_gets_the_priorities_and_its_task(client):
    d = await setup(client)
    result = await ingest(client, "referral", [d.up("ZZ0001", d.contracted)])
    assert (result["stored"], result["rejected"]) == (1, 0), result["records"]
    (ref,) = result["records"][0]["created"]
    assert result["records"][0]["key"] == "ZZ0001"
    referral = await read(client, ref)
    priorities = {e["valueCoding"]["code"] for e in referral["extension"] if e["url"] == PRIORITY}
    assert priorities == {"expert-appointment", "examination", "admission"}
    hospital = await search_one(
        client, f"Organization?identifier=https://fhir.jtys.cn/sid/uscc|{HOSPITAL}"
    )
    assert referral["performer"][0]["reference"] == hospital
    assert referral["requester"]["reference"].startswith("PractitionerRole/")
    assert referral["basedOn"][0]["reference"].startswith("CarePlan/")
    assert referral["subject"]["reference"].startswith("Patient/")
    (task,) = await tasks_of(client, ref)
    assert task["status"] == "requested" and task["owner"]["reference"] == hospital
    assert task["for"]["reference"] == referral["subject"]["reference"]


async def test_up_form_of_a_resident_without_contract(client):
    d = await setup(client)
    result = await ingest(client, "referral", [d.up("ZZ0002", d.uncontracted)])
    assert result["rejected"] == 1  # the fixture's form asks for the green channel
    assert "POL-2301" in codes(result["records"][0]["issues"])
    result = await ingest(client, "referral", [d.up("ZZ0002", d.uncontracted, 绿色通道="否")])
    assert result["stored"] == 1, result["records"]
    referral = await read(client, result["records"][0]["created"][0])
    assert not [e for e in referral["extension"] if e["url"] == PRIORITY]
    assert len(await tasks_of(client, result["records"][0]["created"][0])) == 1


async def test_down_form_goes_to_the_responsible_doctor(client):
    d = await setup(client)
    up = await ingest(client, "referral", [d.up("ZZ0003", d.contracted)])
    up_ref = up["records"][0]["created"][0]
    result = await ingest(client, "referral", [d.down("HZ0003", d.contracted, "ZZ0003")])
    assert result["stored"] == 1, result["records"]
    down_ref = result["records"][0]["created"][0]
    referral = await read(client, down_ref)
    doctor = await search_one(
        client,
        f"PractitionerRole?identifier=https://fhir.jtys.cn/sid/staff|{d.community}-{d.doctor}",
    )
    community = await search_one(
        client, f"Organization?identifier=https://fhir.jtys.cn/sid/uscc|{d.community}"
    )
    assert [p["reference"] for p in referral["performer"]] == [doctor]
    assert up_ref in [b["reference"] for b in referral["basedOn"]]
    assert not [e for e in referral["extension"] if e["url"] == PRIORITY]
    (task,) = await tasks_of(client, down_ref)
    assert task["owner"]["reference"] == community


async def test_down_form_naming_the_wrong_place_or_without_contract(client):
    d = await setup(client)
    # The 回转单 of the fixture names the team's institution and the responsible doctor: kept.
    named = d.down("HZ0004", d.contracted, None, 转入机构=d.community, 接诊医生工号=d.doctor)
    other = d.down("HZ0005", d.contracted, None, 转入机构=HOSPITAL)
    alone = d.down("HZ0006", d.uncontracted, None)
    result = await ingest(client, "referral", [named, other, alone])
    assert [r["status"] for r in result["records"]] == ["stored", "rejected", "rejected"]
    assert "POL-2304" in codes(result["records"][1]["issues"])
    assert "POL-2302" in codes(result["records"][2]["issues"])
    referral = await read(client, result["records"][0]["created"][0])
    assert len(referral["performer"]) == 2


async def test_resending_forms_updates_and_never_duplicates(client):
    d = await setup(client)
    forms = [d.up("ZZ0007", d.contracted), d.down("HZ0007", d.contracted, "ZZ0007")]
    first = await ingest(client, "referral", forms)
    assert (first["stored"], first["rejected"]) == (2, 0), first["records"]
    forms[0]["紧急程度"] = "普通"
    again = await ingest(client, "referral", forms)
    assert (again["stored"], again["updated"], again["rejected"]) == (0, 2, 0), again["records"]
    assert await count(client, "ServiceRequest") == 2 and await count(client, "Task") == 2
    referral = await read(client, again["records"][0]["updated"][0])
    assert referral["priority"] == "routine"
    priorities = [e for e in referral["extension"] if e["url"] == PRIORITY]
    assert len(priorities) == 3  # added again to the new version, not piled up


async def test_forms_as_gb18030_csv(client):
    d = await setup(client)
    forms = [d.up("ZZ0008", d.contracted), d.down("HZ0008", d.contracted, "ZZ0008")]
    r = await client.post(
        "/$ingest",
        params={"source": "referral"},
        content=csv_bytes("referral", forms, "gb18030"),
        headers={"content-type": "text/csv; charset=gb18030"},
    )
    assert r.status_code == 200, r.text
    result = outcome(r)
    assert (result["stored"], result["rejected"]) == (2, 0), result["records"]
    assert result["notes"] == []


async def test_problems_name_the_form_field(client):
    await setup(client)
    records = json.loads((FIXTURES / "problems.input.json").read_text("utf-8"))
    result = await ingest(client, "referral", records)
    assert result["rejected"] == 3 and await count(client, "ServiceRequest") == 0
    locations = [loc for i in result["records"][0]["issues"] for loc in i["location"]]
    assert locations == ["record[1].转入科室", "record[1].转诊单号"]
