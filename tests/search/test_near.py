"""Location?near over HTTP (SQLite and PostgreSQL): distance, units, OR, :missing, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.search.conftest import ids, seed


def location(lid: str, lat: float | None = None, lon: float | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Location", "id": lid, "name": lid}
    if lat is not None:
        res["position"] = {"latitude": lat, "longitude": lon}
    return res


YUEXIU = (23.129, 113.264)
RESOURCES = [
    location("yuexiu", *YUEXIU),
    location("north-3km", 23.156, 113.264),  # 3.0 km north
    location("corner", 23.169, 113.304),  # inside a 5 km box, 6.0 km away
    location("shenzhen", 22.543, 114.058),  # ~104 km
    location("no-position"),
    location("fiji-east", -16.5, 179.95),
    location("fiji-west", -16.5, -179.95),  # 10.7 km from fiji-east, across ±180°
]
HERE = f"{YUEXIU[0]}|{YUEXIU[1]}"


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    await seed(app, RESOURCES)


CASES = [
    (f"near={HERE}|1|km", {"yuexiu"}),
    (f"near={HERE}|5|km", {"yuexiu", "north-3km"}),
    (f"near={HERE}|5000|m", {"yuexiu", "north-3km"}),
    (f"near={HERE}|7", {"yuexiu", "north-3km", "corner"}),
    (f"near={HERE}", {"yuexiu", "north-3km", "corner"}),  # the default 10 km
    (f"near={HERE}|100", {"yuexiu", "north-3km", "corner"}),
    (f"near={HERE}|110", {"yuexiu", "north-3km", "corner", "shenzhen"}),
    (f"near={HERE}|70|[mi_i]", {"yuexiu", "north-3km", "corner", "shenzhen"}),
    (f"near=22.543|114.058|1,{HERE}|1", {"shenzhen", "yuexiu"}),
    (f"near={HERE}|5&name=corner", set()),
    ("near=-16.5|179.95|15", {"fiji-east", "fiji-west"}),
    ("near=-16.5|-179.95|15", {"fiji-east", "fiji-west"}),
    ("near=-16.5|179.95|5", {"fiji-east"}),
    ("near:missing=true", {"no-position"}),
    ("near:missing=false", {"yuexiu", "north-3km", "corner", "shenzhen", "fiji-east", "fiji-west"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_near(reader, query, expected):
    assert set(await ids(reader, f"Location?{query}&_count=100")) == expected


@pytest.mark.parametrize(
    "query", ["near=abc", "near=23|113|5|furlong", "near=91|0", "near:below=1|2"]
)
async def test_bad_near_values_are_400(reader, query):
    r = await reader.get(f"Location?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"]


async def test_capability_statement_lists_near(reader):
    cs = (await reader.get("metadata")).json()
    loc = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Location")
    assert {"name": "near", "type": "special"}.items() <= next(
        p for p in loc["searchParam"] if p["name"] == "near"
    ).items()


async def test_lenient_handling_ignores_a_malformed_near(reader):
    r = await reader.get("Location?near=abc&name=corner", headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"] == ["corner"]
    outcome = next(e for e in entries if e["search"]["mode"] == "outcome")["resource"]
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "GW-1325"
