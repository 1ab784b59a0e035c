"""健康体检表 through `POST /$ingest` (CSV in GB18030 and UTF-8, JSON) on SQLite and PostgreSQL:
each check an Encounter of the resident with its measurements and lab results, sent again
without duplicates, Chinese text intact; the lab items get the recognition mark as a lab
report's do; a bad value is refused at its source field (per record, and with a 4xx and
nothing stored in atomic mode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_ingest import count, ingest, outcome
from tests.mappings.test_report_mappings import world
from tests.policy.test_recognition import mark_of

FIXTURES = Path(__file__).resolve().parents[2] / "mappings" / "health-exam" / "fixtures"
CSV = FIXTURES / "annual-check.input.csv"  # GB18030 on disk
JSON_RECORDS = FIXTURES / "aliases-and-json.input.json"
SID = "https://fhir.jtys.cn/sid/health-exam"
LOINC = "http://loinc.org"


async def send(client: httpx.AsyncClient, body: bytes, charset: str, **params: str) -> Any:
    return await client.post(
        "/$ingest",
        params={"source": "health-exam", **params},
        content=body,
        headers={"content-type": f"text/csv; charset={charset}"},
    )


async def observations(client: httpx.AsyncClient, number: str) -> dict[str, dict[str, Any]]:
    """The Observations of one check by their LOINC code (the 健康评价 by its category)."""
    found = (
        await client.get("/Observation", params={"identifier": f"{SID}|{number}", "_count": "50"})
    ).json()
    out: dict[str, dict[str, Any]] = {}
    for e in found.get("entry") or []:
        obs = e["resource"]
        codes = [c["code"] for c in obs["code"].get("coding") or []]
        out[codes[0] if codes else obs["category"][0]["coding"][0]["code"]] = obs
    return out


async def test_health_checks_and_what_they_measured(client: httpx.AsyncClient) -> None:
    w = await world(client)
    raw = CSV.read_bytes()
    r = await send(client, raw, "gb18030")
    assert r.status_code == 200, r.text
    done = outcome(r)
    assert (done["stored"], done["rejected"]) == (2, 2), done
    assert done["records"][2]["issues"][0]["location"] == ["record[3].空腹血糖"]
    assert {loc for i in done["records"][3]["issues"] for loc in i["location"]} == {
        "record[4].左侧舒张压",
        "record[4].异常1",
    }
    patient = w["patient"]
    assert await count(client, f"Encounter?patient={patient}") == 2
    # a full form: blood pressure, 6 other vital signs, 11 lab items, the evaluation;
    # the short one: blood pressure, temperature, pulse, height, weight, the evaluation
    assert await count(client, f"Observation?patient={patient}") == 19 + 6
    exam = (await client.get("/Encounter", params={"identifier": f"{SID}|TJ20260318001"})).json()
    assert exam["total"] == 1
    visit = exam["entry"][0]["resource"]
    assert visit["subject"]["reference"] == patient
    assert visit["participant"][0]["individual"]["reference"] == w["gp"]
    assert visit["serviceProvider"]["reference"] == w["centre"]
    assert visit["period"]["start"] == "2026-03-18T08:40:00+08:00"
    items = await observations(client, "TJ20260318001")
    assert len(items) == 19
    assert all(o["encounter"]["reference"] == f"Encounter/{visit['id']}" for o in items.values())
    bp = items["85354-9"]
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [148, 94]
    assert bp["bodySite"]["coding"][0]["code"] == "368208006"  # the left arm, as the form's first
    assert items["8310-5"]["valueQuantity"] == {
        "value": 36.5, "unit": "℃", "system": "http://unitsofmeasure.org", "code": "Cel",
    }  # fmt: skip
    assert items["14682-9"]["valueQuantity"]["code"] == "umol/L"
    assert items["14682-9"]["valueQuantity"]["unit"] == "μmol/L"
    # recognisable lab items of the (qualified) centre carry the mark, vital signs none
    assert items["4548-4"]["category"][0]["coding"][0]["code"] == "laboratory"
    assert (mark_of(items["4548-4"]), mark_of(items["14647-2"]), mark_of(items["8867-4"])) == (
        "region",
        "region",
        None,
    )
    # the 健康评价 and its findings, Chinese punctuation and all, as the form wrote them
    evaluation = items["exam"]
    assert evaluation["valueCodeableConcept"]["coding"][0]["code"] == "A"
    assert [n["text"] for n in evaluation["note"]] == [
        "血压偏高（左侧 148/94 mmHg），建议复查",
        "空腹血糖 7.2 mmol/L，高于正常",
        "超重（BMI 26.4），血脂异常",
    ]
    normal = (await observations(client, "TJ20260318002"))["exam"]
    assert normal["valueCodeableConcept"]["coding"][0]["code"] == "N"
    assert "note" not in normal
    # the same file in UTF-8, again: updated, nothing duplicated
    again = outcome(await send(client, raw.decode("gb18030").encode("utf-8"), "utf-8"))
    assert (again["stored"], again["updated"], again["rejected"]) == (0, 2, 2), again
    assert await count(client, f"Encounter?patient={patient}") == 2
    assert await count(client, f"Observation?patient={patient}") == 25
    assert len((await observations(client, "TJ20260318001"))["exam"]["note"]) == 3


async def test_json_records_by_other_column_names(client: httpx.AsyncClient) -> None:
    w = await world(client)
    records = json.loads(JSON_RECORDS.read_text("utf-8"))
    done = await ingest(client, "health-exam", [*records, dict(records[0], 左侧收缩压=150)])
    assert (done["stored"], done["rejected"]) == (1, 2), done
    assert done["records"][1]["issues"][0]["location"] == ["record[2].健康评价"]
    assert done["records"][2]["issues"][0]["location"] == ["record[3].左侧舒张压"]
    items = await observations(client, "TJ20260905007")
    assert sorted(items) == sorted(
        ["8867-4", "39156-5", "14771-0", "1742-6", "1920-8", "14682-9", "22748-8", "14646-4"]
        + ["exam"]
    )
    assert items["14771-0"]["valueQuantity"]["value"] == 6.1
    assert items["14771-0"]["subject"]["reference"] == w["patient"]
    assert items["exam"]["note"] == [{"text": "谷丙转氨酶正常高限，建议戒酒、复查肝功能"}]
    # a right-arm reading is not taken (the mapping takes the left arm): noted, not silent
    right = await ingest(client, "health-exam", [dict(records[0], 右侧收缩压=132, 右侧舒张压=84)])
    assert (right["stored"], right["updated"]) == (0, 1), right
    assert [n["diagnostics"] for n in right["notes"]] == [
        "'右侧收缩压' is not a field of mapping health-exam: ignored",
        "'右侧舒张压' is not a field of mapping health-exam: ignored",
    ]
    assert await count(client, f"Observation?patient={w['patient']}") == 9


async def test_atomic_a_bad_value_stores_nothing(client: httpx.AsyncClient) -> None:
    await world(client)
    r = await send(client, CSV.read_bytes(), "gb18030", mode="atomic")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    locations = {loc for i in body["issue"] for loc in i.get("location") or []}
    assert "record[3].空腹血糖" in locations
    assert await count(client, "Encounter") == 0
    assert await count(client, "Observation") == 0
