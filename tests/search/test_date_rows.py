"""Several clauses on one date parameter: evaluated against one index row when the parameter
has one per resource, and against any rows otherwise (the spec's AND over all values)."""

from __future__ import annotations

import pytest

from tests.search.conftest import ids, seed


def _med(mid: str, *events: str) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/x"},
        "medicationCodeableConcept": {"text": "二甲双胍"},
        "dosageInstruction": [{"timing": {"event": [e]}} for e in events],
    }


def _enc(eid: str, start: str, end: str) -> dict:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": start, "end": end},
    }


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    await seed(
        app,
        [
            _enc("e2015", "2015-03-01", "2015-03-02"),
            _enc("e2019", "2019-05-01", "2019-05-03"),
            _enc("long", "2014-01-01", "2020-01-01"),
            _med("two-years", "2015-01-01", "2020-01-01"),
            _med("one-year", "2017-06-01"),
        ],
    )


async def test_single_valued_range_holds_of_one_row(reader):
    # A period matches ge when it ends on or after the value, lt when it starts before it.
    found = await ids(reader, "Encounter?date=ge2015-01-01&date=lt2016-01-01")
    assert found == ["e2015", "long"]
    found = await ids(reader, "Encounter?date=ge2019-01-01&date=le2019-12-31")
    assert found == ["e2019", "long"]
    assert await ids(reader, "Encounter?date=ge2016-01-01&date=lt2017-01-01") == ["long"]
    assert await ids(reader, "Encounter?date=ge2021-01-01&date=lt2014-01-01") == []


async def test_multi_valued_clauses_may_hold_of_different_values(reader):
    # ge2019 holds of the 2020 dose, lt2016 of the 2015 dose: both clauses hold (R4 search:
    # repeated parameters are ANDed, each over all the values).
    found = await ids(reader, "MedicationRequest?date=ge2019-01-01&date=lt2016-01-01")
    assert found == ["two-years"]
    found = await ids(reader, "MedicationRequest?date=ge2017-01-01&date=lt2018-01-01")
    assert found == ["one-year", "two-years"]
    found = await ids(reader, "MedicationRequest?date=ge2021-01-01&date=lt2016-01-01")
    assert found == []
