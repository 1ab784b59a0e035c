"""The recognition decision over the real rules (profiles/policy/recognition.yaml and the
region packs): each condition and each exception."""

from __future__ import annotations

from datetime import date
from pathlib import Path
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
from gateway.recognition.rules import load

RULES = load(Path(__file__).parents[3] / "profiles" / "policy")
ON = date(2026, 6, 30)
EQA_2026 = (Qualified("eqa", date(2026, 1, 1), date(2026, 12, 31), True),)


def result(code: str = "4548-4", taken: str = "2026-06-01", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "effectiveDateTime": f"{taken}T08:00:00+08:00",
        **more,
    }


def org(
    level: int, division: str = "440104", alliances: tuple[str, ...] = (), qualified: bool = True
) -> Institution:
    return Institution(
        f"Organization/L{level}",
        level,
        division,
        frozenset(alliances),
        EQA_2026 if qualified else (),
    )


CITY = org(3, "440104")
DISTRICT = org(2, "440105")
COMMUNITY = org(1, "440106")


def test_a_higher_lab_is_accepted_below_and_at_its_level() -> None:
    for requester in (COMMUNITY, DISTRICT, CITY):
        assert decide(result(), CITY, requester, ON, RULES).recognised


def test_a_lower_lab_is_not_accepted_above() -> None:
    assert decide(result(), COMMUNITY, CITY, ON, RULES).reason == HIERARCHY
    assert decide(result(), DISTRICT, CITY, ON, RULES).reason == HIERARCHY
    assert decide(result(), COMMUNITY, COMMUNITY, ON, RULES).recognised  # same level


def test_within_an_alliance_all_are_mutual_even_across_levels_and_regions() -> None:
    lab = org(1, "410102", ("Organization/A",))
    hospital = org(3, "440104", ("Organization/A",))
    assert decide(result(), lab, hospital, ON, RULES).recognised
    other = org(3, "440104", ("Organization/B",))
    assert decide(result(), lab, other, ON, RULES).reason == OUTSIDE_SCOPE


def test_an_item_off_the_list_is_not_recognisable() -> None:
    assert decide(result("99999-9"), CITY, COMMUNITY, ON, RULES).reason == NOT_RECOGNISABLE
    other_system = result()
    other_system["code"]["coding"][0]["system"] = "http://example.org"
    assert decide(other_system, CITY, COMMUNITY, ON, RULES).reason == NOT_RECOGNISABLE


@pytest.mark.parametrize(
    ("code", "inside", "outside"),
    [
        ("1558-6", "2026-06-23", "2026-06-22"),  # fasting glucose: 7 days
        ("718-7", "2026-06-23", "2026-06-22"),  # haemoglobin: 7 days
        ("4548-4", "2026-04-01", "2026-03-31"),  # HbA1c: 90 days
        ("2160-0", "2026-05-31", "2026-05-30"),  # creatinine: 30 days
        ("5196-1", "2026-01-01", "2025-12-31"),  # HBsAg: 180 days
    ],
)
def test_a_result_older_than_its_window_has_expired(code: str, inside: str, outside: str) -> None:
    lab = org(3, "440104", qualified=False)
    lab = Institution(lab.ref, 3, "440104", frozenset(), (Qualified("eqa", None, None, True),))
    assert decide(result(code, inside), lab, COMMUNITY, ON, RULES).recognised
    assert decide(result(code, outside), lab, COMMUNITY, ON, RULES).reason == EXPIRED


def test_an_undated_result_has_expired() -> None:
    undated = result()
    del undated["effectiveDateTime"]
    assert decide(undated, CITY, COMMUNITY, ON, RULES).reason == EXPIRED
    undated["issued"] = "2026-06-01T10:00:00+08:00"  # issued stands in for effective
    assert decide(undated, CITY, COMMUNITY, ON, RULES).recognised


def test_a_region_pack_overrides_a_window() -> None:
    # the days in a pack (none set in the shipped packs): the item's default applies
    region = RULES.region_for("440104")
    item = RULES.rules.item_by_code("4548-4")
    assert item is not None and RULES.days(item, region) == 90


def test_the_lab_needs_a_passed_qualification_covering_the_result_day() -> None:
    unqualified = org(3, qualified=False)
    assert decide(result(), unqualified, COMMUNITY, ON, RULES).reason == LAB_NOT_QUALIFIED
    failed = Institution(
        "Organization/F", 3, "440104", frozenset(), (Qualified("eqa", None, None, False),)
    )
    assert decide(result(), failed, COMMUNITY, ON, RULES).reason == LAB_NOT_QUALIFIED
    lapsed = Institution(
        "Organization/X",
        3,
        "440104",
        frozenset(),
        (Qualified("eqa", date(2025, 1, 1), date(2026, 5, 31), True),),
    )
    assert decide(result(taken="2026-05-31"), lapsed, COMMUNITY, ON, RULES).recognised
    assert (
        decide(result(taken="2026-06-01"), lapsed, COMMUNITY, ON, RULES).reason == LAB_NOT_QUALIFIED
    )
    assert decide(result(), None, COMMUNITY, ON, RULES).reason == LAB_NOT_QUALIFIED


def test_imaging_needs_no_lab_qualification() -> None:
    xray = result("36643-5", "2026-02-01")
    assert decide(xray, org(3, qualified=False), COMMUNITY, ON, RULES).recognised


def test_the_scope_is_the_requesters_region() -> None:
    # Guangzhou: city-wide (4401); Zhongyuan: Zhengzhou's regional platform (4101)
    assert decide(result(), org(3, "440183"), org(1, "440104"), ON, RULES).recognised
    zhengzhou_lab = org(3, "410105")
    assert decide(result(), zhengzhou_lab, org(1, "410102"), ON, RULES).recognised
    assert decide(result(), zhengzhou_lab, org(1, "440104"), ON, RULES).reason == OUTSIDE_SCOPE
    # a region without a recognition section: its own divisions (Xinjiang: 65)
    assert decide(result(), org(3, "650105"), org(1, "650102"), ON, RULES).recognised
    assert decide(result(), org(3, "110101"), org(1, "650102"), ON, RULES).reason == OUTSIDE_SCOPE
    # nowhere governed by a region pack: only an alliance
    assert decide(result(), org(3, "110101"), org(1, "110101"), ON, RULES).reason == OUTSIDE_SCOPE


def test_the_mark() -> None:
    assert mark(result(), CITY, RULES.rules) == "region"
    assert mark(result(), org(3, alliances=("Organization/A",)), RULES.rules) == "alliance"
    assert mark(result("99999-9"), CITY, RULES.rules) is None
    assert mark(result(), org(3, qualified=False), RULES.rules) is None
    assert mark(result(taken="2027-01-05"), CITY, RULES.rules) is None  # qualification lapsed
    assert mark(result(), None, RULES.rules) is None
