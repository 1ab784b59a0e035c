"""A recognisable item is its analyte, not one LOINC code: a result coded with LOINC's
substance-concentration code (mmol/L, μmol/L: how Chinese labs and our mappings code glucose,
lipids, creatinine, urea and uric acid) is recognised exactly as one coded with the
mass-concentration code a sender may use, with the same window."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from gateway.recognition.decide import EXPIRED, decide
from gateway.recognition.institutions import Institution, Qualified
from gateway.recognition.rules import Recognition, load
from gateway.validation.locations import default_profiles_dir

ON = date(2026, 6, 30)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
YEAR = (Qualified("eqa", date(2026, 1, 1), date(2026, 12, 31), True),)
LAB = Institution("Organization/city", 3, "440104", frozenset(), YEAR)
COMMUNITY = Institution("Organization/community", 1, "440106", frozenset(), YEAR)
# (mass code, substance code, the item's window in days)
PAIRS = [
    ("1558-6", "14771-0", 7),  # 空腹血糖
    ("2345-7", "14749-6", 7),  # 血糖 (fasting not stated), the same item
    ("2093-3", "14647-2", 30),  # 总胆固醇
    ("2571-8", "14927-8", 30),  # 甘油三酯
    ("2085-9", "14646-4", 30),  # 高密度脂蛋白胆固醇
    ("2089-1", "22748-8", 30),  # 低密度脂蛋白胆固醇
    ("13457-7", "39469-2", 30),  # 低密度脂蛋白胆固醇, calculated
    ("2160-0", "14682-9", 30),  # 血肌酐
    ("3094-0", "14937-7", 30),  # 尿素氮
    ("3094-0", "22664-7", 30),  # 尿素 (the same analyte, in mmol/L)
    ("3084-1", "14933-6", 30),  # 尿酸
]


@pytest.fixture(scope="module")
def rules() -> Recognition:
    return load(default_profiles_dir() / "policy")


def result(code: str, day: date, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": f"{day.isoformat()}T08:00:00+08:00",
        "valueQuantity": {"value": 5.1, "unit": unit, "system": UCUM, "code": unit},
    }


@pytest.mark.parametrize(("mass", "substance", "days"), PAIRS)
def test_both_codes_of_an_analyte_are_one_item_with_one_window(
    rules: Recognition, mass: str, substance: str, days: int
) -> None:
    item = rules.rules.item_by_code(substance)
    assert item is not None and item is rules.rules.item_by_code(mass)
    for code, unit in ((mass, "mg/dL"), (substance, "mmol/L")):
        inside = result(code, ON - timedelta(days=days), unit)
        assert decide(inside, LAB, COMMUNITY, ON, rules).recognised, code
        late = result(code, ON - timedelta(days=days + 1), unit)
        assert decide(late, LAB, COMMUNITY, ON, rules).reason == EXPIRED, code
