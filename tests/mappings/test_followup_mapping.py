"""高血压 / 2 型糖尿病患者随访服务记录 through `POST /$ingest` (CSV, UTF-8 and GB18030) on SQLite
and PostgreSQL: each visit an Encounter of the resident with its measurements, sent again
without duplicates; a form's blood pressure with one value is refused at its field."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.test_ingest import count, outcome
from tests.mappings.test_report_mappings import world

CSV = (
    Path(__file__).resolve().parents[2]
    / "mappings"
    / "chronic-followup"
    / "fixtures"
    / "hypertension-and-diabetes.input.csv"
)


async def send(client: httpx.AsyncClient, body: bytes, charset: str) -> dict:
    r = await client.post(
        "/$ingest",
        params={"source": "chronic-followup"},
        content=body,
        headers={"content-type": f"text/csv; charset={charset}"},
    )
    assert r.status_code == 200, r.text
    return outcome(r)


async def test_follow_up_visits_and_their_measurements(client: httpx.AsyncClient) -> None:
    w = await world(client)
    text = CSV.read_text("utf-8")
    done = await send(client, text.encode("utf-8"), "utf-8")
    assert (done["stored"], done["rejected"]) == (2, 2), done
    assert done["records"][2]["issues"][0]["location"] == ["record[3].舒张压"]
    assert done["records"][3]["issues"][0]["location"] == ["record[4].随访类型"]
    patient = w["patient"]
    assert await count(client, f"Encounter?patient={patient}") == 2
    # blood pressure, heart rate, weight, classification; weight, glucose, classification
    assert await count(client, f"Observation?patient={patient}") == 7
    found = (
        await client.get(
            "/Observation",
            params={
                "patient": patient,
                "code": "http://loinc.org|85354-9",
                "_include": "Observation:encounter",
            },
        )
    ).json()
    kinds = sorted(e["resource"]["resourceType"] for e in found["entry"])
    assert kinds == ["Encounter", "Observation"]
    bp = next(
        e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [146, 92]
    visit = next(
        e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    assert visit["participant"][0]["individual"]["reference"] == w["gp"]
    assert visit["serviceProvider"]["reference"] == w["centre"]
    assert visit["class"]["code"] == "AMB"
    # the same file in GB18030, again: updated, nothing duplicated
    again = await send(client, text.encode("gb18030"), "gb18030")
    assert (again["stored"], again["updated"], again["rejected"]) == (0, 2, 2), again
    assert await count(client, f"Encounter?patient={patient}") == 2
    assert await count(client, f"Observation?patient={patient}") == 7
