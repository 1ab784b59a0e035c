"""The recognition rules case by case (gateway.recognition.decide, pure): each condition a
result must meet for a requester to have to accept it, at its boundary, and each exception —
with the shipped rules and region packs (profiles/policy)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from gateway.recognition.decide import (
    EXPIRED,
    HIERARCHY,
    LAB_NOT_QUALIFIED,
    NOT_RECOGNISABLE,
    OUTSIDE_SCOPE,
    decide,
    mark,
)
from gateway.recognition.institutions import Institution, Qualified
from gateway.recognition.rules import Recognition, Region, RegionRecognition, load
from gateway.validation.locations import default_profiles_dir

ON = date(2026, 6, 30)
LOINC = "http://loinc.org"
YEAR = (Qualified("eqa", date(2026, 1, 1), date(2026, 12, 31), True),)


@pytest.fixture(scope="module")
def rules() -> Recognition:
    return load(default_profiles_dir() / "policy")


def result(code: str, day: date | None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        **more,
    }
    if day is not None:
        body["effectiveDateTime"] = f"{day.isoformat()}T08:00:00+08:00"
    return body


def org(
    level: int,
    division: str = "440104",
    qualified: tuple[Qualified, ...] = YEAR,
    alliances: frozenset[str] = frozenset(),
) -> Institution:
    return Institution(f"Organization/l{level}-{division}", level, division, alliances, qualified)


def reason(rules: Recognition, res: dict[str, Any], lab: Institution | None, req: Institution):
    return decide(res, lab, req, ON, rules).reason


# --- the item ---------------------------------------------------------------------------
def test_only_listed_items(rules: Recognition) -> None:
    assert reason(rules, result("99999-9", ON), org(3), org(1)) == NOT_RECOGNISABLE
    assert reason(rules, result("4548-4", ON), org(3), org(1)) is None
    other_system = result("4548-4", ON)
    other_system["code"]["coding"][0]["system"] = "urn:local"
    assert reason(rules, other_system, org(3), org(1)) == NOT_RECOGNISABLE
    # any of an item's codes, and any coding of the result
    assert reason(rules, result("2345-7", ON), org(3), org(1)) is None  # glucose, 2nd code
    both = result("99999-9", ON)
    both["code"]["coding"].append({"system": LOINC, "code": "4548-4"})
    assert reason(rules, both, org(3), org(1)) is None


# --- the window -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "days"),
    [("1558-6", 7), ("4548-4", 90), ("2160-0", 30), ("5196-1", 180), ("24627-2", 90)],
)
def test_the_window_is_inclusive(rules: Recognition, code: str, days: int) -> None:
    assert reason(rules, result(code, ON - timedelta(days=days)), org(3), org(3)) is None
    late = result(code, ON - timedelta(days=days + 1))
    assert reason(rules, late, org(3), org(3)) == EXPIRED


def test_an_undated_result_is_expired_and_issued_stands_for_effective(rules) -> None:
    assert reason(rules, result("4548-4", None), org(3), org(3)) == EXPIRED
    issued = result("4548-4", None, issued=f"{ON.isoformat()}T10:00:00+08:00")
    assert reason(rules, issued, org(3), org(3)) is None
    period = result("4548-4", None, effectivePeriod={"start": "2026-06-01"})
    assert reason(rules, period, org(3), org(3)) is None


def test_a_region_pack_sets_its_own_window() -> None:
    base = load(default_profiles_dir() / "policy")
    region = Region("test", ["4401"], RegionRecognition(scope=["4401"], days={"4548-4": 60}))
    rules = Recognition(base.rules, [region])
    at = ON - timedelta(days=61)
    assert reason(rules, result("4548-4", at), org(3), org(3)) == EXPIRED  # 60, not 90
    elsewhere = org(3, "440104")
    shanghai = Recognition(base.rules, [Region("sh", ["31"], None)])
    assert reason(shanghai, result("4548-4", at), org(3, "310101"), org(3, "310101")) is None
    assert reason(rules, result("4548-4", at), elsewhere, elsewhere) == EXPIRED


# --- the lab ----------------------------------------------------------------------------
def test_a_lab_result_needs_a_passed_qualification_covering_its_day(rules) -> None:
    day = ON - timedelta(days=3)
    lapsed = (Qualified("eqa", date(2025, 1, 1), day - timedelta(days=1), True),)
    failed = (Qualified("eqa", date(2026, 1, 1), date(2026, 12, 31), False),)
    other = (Qualified("other", date(2026, 1, 1), date(2026, 12, 31), True),)
    open_ended = (Qualified("eqa", date(2026, 1, 1), None, True),)
    for quals, expected in (
        (YEAR, None),
        (lapsed, LAB_NOT_QUALIFIED),
        (failed, LAB_NOT_QUALIFIED),
        (other, LAB_NOT_QUALIFIED),
        ((), LAB_NOT_QUALIFIED),
        (open_ended, None),
    ):
        assert reason(rules, result("4548-4", day), org(3, qualified=quals), org(3)) == expected
    assert reason(rules, result("4548-4", day), None, org(3)) == LAB_NOT_QUALIFIED  # no lab


def test_imaging_and_ecg_need_no_lab_qualification(rules: Recognition) -> None:
    day = ON - timedelta(days=3)
    for code in ("36643-5", "24627-2", "11524-6"):
        assert reason(rules, result(code, day), org(3, qualified=()), org(3)) is None, code
        assert reason(rules, result(code, day), None, org(3)) == LAB_NOT_QUALIFIED, code


# --- where and which level --------------------------------------------------------------
def test_levels(rules: Recognition) -> None:
    res = result("4548-4", ON)
    assert reason(rules, res, org(2), org(2)) is None  # same level
    assert reason(rules, res, org(3), org(1)) is None  # a lower level accepts a higher one
    assert reason(rules, res, org(1), org(3)) == HIERARCHY  # not the other way
    assert reason(rules, res, org(2), org(3)) == HIERARCHY
    assert reason(rules, res, org(0), org(1)) == HIERARCHY  # unranked below ranked
    assert reason(rules, res, org(0), org(0)) is None


def test_scope_and_alliances(rules: Recognition) -> None:
    res = result("4548-4", ON)
    guangzhou, zhengzhou = org(3, "440106"), org(3, "410102")
    assert reason(rules, res, guangzhou, org(1, "440104")) is None  # within Guangzhou 4401
    assert reason(rules, res, zhengzhou, org(1, "440104")) == OUTSIDE_SCOPE
    assert reason(rules, res, org(3, "110101"), org(1, "440104")) == OUTSIDE_SCOPE
    assert reason(rules, res, org(3, None), org(1, "440104")) == OUTSIDE_SCOPE  # no division
    # an alliance is mutual at every level and across regions
    group = frozenset({"Organization/alliance"})
    member = org(1, "410102", alliances=group)
    assert reason(rules, res, member, org(3, "440106", alliances=group)) is None
    assert reason(rules, res, member, org(3, "440106")) == OUTSIDE_SCOPE


def test_the_mark(rules: Recognition) -> None:
    res = result("4548-4", ON)
    assert mark(res, org(1), rules.rules) == "region"
    group = frozenset({"Organization/alliance"})
    assert mark(res, org(1, alliances=group), rules.rules) == "alliance"
    assert mark(res, org(1, qualified=()), rules.rules) is None
    assert mark(result("99999-9", ON), org(1), rules.rules) is None
    assert mark(res, None, rules.rules) is None
