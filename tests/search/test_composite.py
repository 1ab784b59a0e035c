"""Composite parameters over HTTP (SQLite and PostgreSQL): components match within one element
of the base, `$` separates components, `\\$` is a literal dollar."""

from __future__ import annotations

from typing import Any

import pytest

from tests.search.conftest import ids, seed

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def _mmhg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def bp(oid: str, systolic: float, diastolic: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": _code("85354-9"),
        "component": [
            {"code": _code("8480-6"), "valueQuantity": _mmhg(systolic)},
            {"code": _code("8462-4"), "valueQuantity": _mmhg(diastolic)},
        ],
    }


def obs(oid: str, code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": _code(code),
        **value,
    }


RESOURCES = [
    bp("bp-high", 150, 80),
    bp("bp-low-dia-high", 110, 95),
    obs("height-cm", "8302-2", valueQuantity={"value": 170, "system": UCUM, "code": "cm"}),
    obs("height-m", "8302-2", valueQuantity={"value": 1.8, "system": UCUM, "code": "m"}),
    obs(
        "covid",
        "94500-6",
        valueCodeableConcept={
            "coding": [{"system": "http://snomed.info/sct", "code": "260373001"}]
        },
    ),
    obs("note", "8251-1", valueString="甲$乙"),
    obs("onset", "11368-8", valueDateTime="2024-03-05"),
    obs("no-value", "8302-2"),
]


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    await seed(app, RESOURCES)


CASES = [
    ("component-code-value-quantity=http://loinc.org|8480-6$gt140", {"bp-high"}),
    ("component-code-value-quantity=8462-4$gt90", {"bp-low-dia-high"}),
    ("component-code-value-quantity=8480-6$gt100", {"bp-high", "bp-low-dia-high"}),
    # the systolic code never pairs with the diastolic value of the same Observation
    ("component-code-value-quantity=8480-6$lt100", set()),
    ("component-code-value-quantity=8462-4$ge150", set()),
    # OR between composite values, AND between repetitions
    ("component-code-value-quantity=8480-6$gt140,8462-4$gt90", {"bp-high", "bp-low-dia-high"}),
    (
        "component-code-value-quantity=8480-6$gt100&component-code-value-quantity=8462-4$lt90",
        {"bp-high"},
    ),
    ("combo-code-value-quantity=8480-6$150", {"bp-high"}),
    ("combo-code-value-quantity=8302-2$gt1.75|http://unitsofmeasure.org|m", {"height-m"}),
    # quantities compare in canonical units: 170 cm = 1.7 m
    ("code-value-quantity=8302-2$1.7|http://unitsofmeasure.org|m", {"height-cm"}),
    ("code-value-quantity=8302-2$gt100", {"height-cm"}),
    ("code-value-quantity=85354-9$gt1", set()),
    ("code-value-concept=http://loinc.org|94500-6$http://snomed.info/sct|260373001", {"covid"}),
    ("code-value-concept=94500-6$260385009", set()),
    ("code-value-string=8251-1$甲\\$乙", {"note"}),
    ("code-value-string=8251-1$甲", {"note"}),
    ("code-value-date=11368-8$2024-03", {"onset"}),
    ("code-value-date=11368-8$lt2024", set()),
    ("component-code-value-quantity:missing=false", {"bp-high", "bp-low-dia-high"}),
    (
        "code-value-quantity:missing=true",
        {"bp-high", "bp-low-dia-high", "covid", "note", "onset", "no-value"},
    ),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_composite_search(reader, query, expected):
    assert set(await ids(reader, f"Observation?{query}&_count=100")) == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("component-code-value-quantity=8480-6", "GW-1324"),
        ("code-value-string=8251-1$甲$乙", "GW-1324"),
        ("component-code-value-quantity:exact=8480-6$1", "GW-1321"),
        ("code-value-quantity=8302-2$abc", "GW-1311"),
        ("component-code-value-quantity.code=x", "GW-1300"),
        ("_has:Observation:derived-from:component-code-value-quantity=x", "GW-1324"),
    ],
)
async def test_bad_composite_values_are_400(reader, query, code):
    r = await reader.get(f"Observation?{query}", headers={"Prefer": "handling=strict"})
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code
    assert issue["expression"] == [query.split("=")[0]]


async def test_capability_statement_lists_served_composites(reader):
    cs = (await reader.get("metadata")).json()
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    obs_params = {p["name"]: p["type"] for p in by_type["Observation"]["searchParam"]}
    assert obs_params["component-code-value-quantity"] == "composite"
    seq_params = {p["name"] for p in by_type["MolecularSequence"]["searchParam"]}
    assert "chromosome-variant-coordinate" not in seq_params


async def test_lenient_handling_ignores_a_malformed_composite(reader):
    r = await reader.get(
        "Observation?component-code-value-quantity=8480-6&_id=note",
        headers={"Prefer": "handling=lenient"},
    )
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"] == ["note"]
    outcome = next(e for e in entries if e["search"]["mode"] == "outcome")["resource"]
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "GW-1324"
