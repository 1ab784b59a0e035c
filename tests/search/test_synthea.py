"""Realistic queries on Synthea data: the gateway's result set equals a brute-force FHIRPath
scan over the same resources (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fhirpathpy
import orjson
import pytest
from sqlalchemy import select

from gateway.search.values import date_range, normalize_string
from gateway.store.tables import resources
from tests.conftest import client_for, need_corpus, running_app
from tests.search.conftest import all_ids

SYNTHEA = "https://github.com/synthetichealth/synthea"
LOINC = "http://loinc.org"
BUNDLES = 5


def fp(doc: dict, expr: str) -> list[Any]:
    return fhirpathpy.evaluate(doc, expr)


def _bounds(value: Any) -> tuple[datetime, datetime] | None:
    if isinstance(value, str):
        return date_range(value)
    if isinstance(value, dict):  # Period
        lo = (
            date_range(value["start"])[0]
            if value.get("start")
            else datetime.min.replace(tzinfo=UTC)
        )
        hi = date_range(value["end"])[1] if value.get("end") else datetime.max.replace(tzinfo=UTC)
        return lo, hi
    return None


def dates(doc: dict, expr: str) -> list[tuple[datetime, datetime]]:
    return [b for v in fp(doc, expr) if (b := _bounds(v)) is not None]


def day(s: str) -> datetime:
    return date_range(s)[0]


def has_code(doc: dict, expr: str, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in fp(doc, expr))


@pytest.fixture(scope="module")
async def synthea(database_url):
    folder = need_corpus("synthea-r4")
    paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_size)
    info = sorted(p for p in paths if "Information" in p.name)
    people = [p for p in paths if "Information" not in p.name][:BUNDLES]
    async with running_app(database_url, profile_validation="claimed") as app:
        async with client_for(app) as client:
            for p in [*info, *people]:
                r = await client.post("", content=p.read_bytes())
                assert r.status_code == 200, r.text[:500]
            async with app.state.core.store.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(resources.c.content).where(resources.c.deleted.is_(False))
                    )
                ).all()
            by_type: dict[str, list[dict]] = {}
            for (content,) in rows:
                doc = orjson.loads(content)
                by_type.setdefault(doc["resourceType"], []).append(doc)
            yield client, by_type


def _busiest_patient(data: dict[str, list[dict]]) -> dict:
    counts: dict[str, int] = {}
    for o in data["Observation"]:
        ref = o["subject"]["reference"]
        counts[ref] = counts.get(ref, 0) + 1
    pid = max(counts, key=counts.__getitem__).split("/")[1]
    return next(p for p in data["Patient"] if p["id"] == pid)


def _ident(p: dict) -> str:
    return next(i["value"] for i in p["identifier"] if i.get("system") == SYNTHEA)


def _names(doc: dict) -> list[str]:
    return [
        normalize_string(s)
        for s in fp(
            doc,
            "Patient.name.family | Patient.name.given | Patient.name.text | Patient.name.prefix",
        )
    ]


def cases(data: dict[str, list[dict]]) -> list[tuple[str, str, Callable[[dict], bool]]]:
    p = _busiest_patient(data)
    pid, ident = p["id"], _ident(p)
    prefix = normalize_string(p["name"][0]["family"][:3])
    female_ids = {x["id"] for x in data["Patient"] if x.get("gender") == "female"}
    cond_code = data["Condition"][0]["code"]["coding"][0]["code"]
    with_cond = {
        c["subject"]["reference"].split("/")[1]
        for c in data["Condition"]
        if has_code(c, "code.coding", "http://snomed.info/sct", cond_code)
    }
    return [
        (
            "Observation",
            f"patient={pid}&code={LOINC}|8302-2&date=ge2015",
            lambda d: (
                d["subject"]["reference"] == f"Patient/{pid}"
                and has_code(d, "code.coding", LOINC, "8302-2")
                and any(
                    hi >= day("2015") for _, hi in dates(d, "effectiveDateTime | effectivePeriod")
                )
            ),
        ),
        (
            "Encounter",
            f"subject.identifier={SYNTHEA}|{ident}",
            lambda d: d["subject"]["reference"] == f"Patient/{pid}",
        ),
        (
            "Condition",
            "code:text=diabetes",
            lambda d: any(
                normalize_string(s).startswith("diabetes")
                for s in fp(d, "code.coding.display | code.text")
            ),
        ),
        ("Patient", f"name={prefix}", lambda d: any(n.startswith(prefix) for n in _names(d))),
        (
            "Patient",
            "gender=female&birthdate=lt1970",
            lambda d: (
                d.get("gender") == "female"
                and any(lo < day("1970") for lo, _ in dates(d, "birthDate"))
            ),
        ),
        (
            "Observation",
            f"code={LOINC}|2339-0&value-quantity=gt100",
            lambda d: (
                has_code(d, "code.coding", LOINC, "2339-0")
                and any(v > 100 for v in fp(d, "valueQuantity.value"))
            ),
        ),
        (
            "Encounter",
            "date=2018",
            lambda d: any(
                lo >= day("2018") and hi <= date_range("2018")[1] for lo, hi in dates(d, "period")
            ),
        ),
        (
            "Immunization",
            "vaccine-code=http://hl7.org/fhir/sid/cvx|140",
            lambda d: has_code(d, "vaccineCode.coding", "http://hl7.org/fhir/sid/cvx", "140"),
        ),
        (
            "Patient",
            f"_has:Condition:patient:code=http://snomed.info/sct|{cond_code}",
            lambda d: d["id"] in with_cond,
        ),
        (
            "Procedure",
            "date=ge2010-01-01&date=lt2015-01-01",
            lambda d: any(
                hi >= day("2010-01-01") and lo < day("2015-01-01")
                for lo, hi in dates(d, "performedDateTime | performedPeriod")
            ),
        ),
        (
            "Encounter",
            "date=ge2010-01-01&date=lt2012-06-01",
            lambda d: any(
                hi >= day("2010-01-01") and lo < day("2012-06-01") for lo, hi in dates(d, "period")
            ),
        ),
        (
            "DiagnosticReport",
            "subject:Patient.gender=female",
            lambda d: d["subject"]["reference"].split("/")[1] in female_ids,
        ),
        (
            "Observation",
            f"subject=Patient/{pid}&category=vital-signs&_sort=-date",
            lambda d: (
                d["subject"]["reference"] == f"Patient/{pid}"
                and any(c.get("code") == "vital-signs" for c in fp(d, "category.coding"))
            ),
        ),
        (
            "Observation",
            f"component-code-value-quantity={LOINC}|8480-6$gt130",
            lambda d: any(
                has_code(c, "code.coding", LOINC, "8480-6")
                and c.get("valueQuantity", {}).get("value", 0) > 130
                for c in d.get("component", [])
            ),
        ),
        (
            "MedicationRequest",
            "status=stopped,active&intent=order",
            lambda d: d["status"] in ("stopped", "active") and d["intent"] == "order",
        ),
    ]


async def test_queries_match_brute_force_scan(synthea):
    client, data = synthea
    checked = 0
    for rtype, query, pred in cases(data):
        expected = {d["id"] for d in data.get(rtype, []) if pred(d)}
        got = await all_ids(client, f"{rtype}?{query}&_count=50")
        assert len(got) == len(set(got)), query
        assert set(got) == expected, (rtype, query, len(got), len(expected))
        checked += bool(expected)
    assert checked >= 8  # the queries are not vacuous
