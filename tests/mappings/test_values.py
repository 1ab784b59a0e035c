"""Source values as regional systems write them → FHIR primitives."""

from __future__ import annotations

import pytest

from gateway.mapping.values import ValueProblem, convert


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-05",
        "2024/01/05",
        "2024/1/5",
        "2024.1.05",
        "20240105",
        "2024年1月5日",
        "２０２４-01-05",
    ],
)
def test_dates_in_every_regional_spelling(text):
    assert convert("date", text) == "2024-01-05"


@pytest.mark.parametrize("text", ["2024-02-30", "2024-13-01", "24/1/5", "2024-01", "明天"])
def test_dates_that_are_not(text):
    with pytest.raises(ValueProblem):
        convert("date", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-15 10:20", "2025-12-15T10:20:00+08:00"),
        ("2025/12/15 9:05:07", "2025-12-15T09:05:07+08:00"),
        ("2025-12-15T10:20:00Z", "2025-12-15T10:20:00Z"),
        ("2025-12-15T10:20:00.250+0100", "2025-12-15T10:20:00.250+01:00"),
        ("20251215", "2025-12-15"),
    ],
)
def test_date_times_take_china_time_unless_zoned(text, expected):
    assert convert("dateTime", text) == expected


def test_date_time_with_an_impossible_time():
    with pytest.raises(ValueProblem, match="time of day"):
        convert("dateTime", "2025-12-15 25:00")


@pytest.mark.parametrize(
    ("text", "expected"), [("20", 20), ("17.00", 17), ("12.5", 12.5), ("1,200", 1200), (5, 5)]
)
def test_amounts(text, expected):
    assert convert("decimal", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("是", True), ("Y", True), ("否", False), ("0", False)]
)
def test_yes_no(text, expected):
    assert convert("boolean", text) is expected


def test_not_a_number_or_yes_no():
    with pytest.raises(ValueProblem):
        convert("decimal", "二十")
    with pytest.raises(ValueProblem):
        convert("boolean", "也许")
    with pytest.raises(ValueProblem, match="whole number"):
        convert("integer", "2.5")
