from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from gateway.search.values import (
    canonical_quantity,
    date_range,
    normalize_string,
    number_range,
    number_text,
    parse_reference,
    reference_type,
)

UCUM = "http://unitsofmeasure.org"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# -- strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Müller", "muller"),
        ("  José   María ", "jose maria"),
        ("ÉCOLE\tPolytechnique", "ecole polytechnique"),
        ("Straße", "strasse"),  # casefold
        ("张三", "张三"),
        ("广州市", "广州市"),
        ("广州市 天河区", "广州市 天河区"),
        ("ＡＢＣ１２３", "abc123"),  # full-width forms (NFKD)
        ("한국", "한국"),  # Hangul recomposed after decomposition
    ],
)
def test_normalize_string(raw: str, norm: str) -> None:
    assert normalize_string(raw) == norm


# -- dates -----------------------------------------------------------------------------------


def test_date_year_precision() -> None:
    assert date_range("2024") == (utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59, 999999))


def test_date_month_precision_leap_february() -> None:
    assert date_range("2024-02") == (utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999))
    assert date_range("2023-12") == (utc(2023, 12, 1), utc(2023, 12, 31, 23, 59, 59, 999999))


def test_date_day_precision() -> None:
    assert date_range("2024-03-05") == (utc(2024, 3, 5), utc(2024, 3, 5, 23, 59, 59, 999999))


def test_datetime_seconds_with_offset_converted_to_utc() -> None:
    low, high = date_range("2024-03-05T08:30:15+08:00")
    assert low == utc(2024, 3, 5, 0, 30, 15)
    assert high == utc(2024, 3, 5, 0, 30, 15, 999999)


def test_datetime_offset_crosses_midnight() -> None:
    low, _ = date_range("2024-01-01T02:00:00+08:00")
    assert low == utc(2023, 12, 31, 18)
    low, _ = date_range("2024-12-31T20:00:00-05:00")
    assert low == utc(2025, 1, 1, 1)


def test_datetime_without_timezone_is_utc() -> None:
    assert date_range("2024-03-05T10:00:00") == (
        utc(2024, 3, 5, 10),
        utc(2024, 3, 5, 10, 0, 0, 999999),
    )


def test_datetime_fractional_seconds_and_minutes() -> None:
    assert date_range("2024-03-05T10:00:00.5Z") == (
        utc(2024, 3, 5, 10, 0, 0, 500000),
        utc(2024, 3, 5, 10, 0, 0, 599999),
    )
    assert date_range("2024-03-05T10:00:00.123456Z") == (
        utc(2024, 3, 5, 10, 0, 0, 123456),
        utc(2024, 3, 5, 10, 0, 0, 123456),
    )
    assert date_range("2024-03-05T10:00Z") == (
        utc(2024, 3, 5, 10),
        utc(2024, 3, 5, 10, 0, 59, 999999),
    )


@pytest.mark.parametrize("bad", ["", "24", "2024-13", "2024-02-30", "not a date", "2024-1-1"])
def test_date_invalid(bad: str) -> None:
    assert date_range(bad) is None


def test_date_end_of_time() -> None:
    low, high = date_range("9999")
    assert low == utc(9999, 1, 1)
    assert high == utc(9999, 12, 31, 23, 59, 59, 999999)


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "low", "high"),
    [
        ("100", 100, 99.5, 100.5),
        ("100.00", 100, 99.995, 100.005),
        ("2.0", 2, 1.95, 2.05),
        ("0.001", 0.001, 0.0005, 0.0015),
        ("-3", -3, -3.5, -2.5),
        ("1e2", 100, 50, 150),
        ("1.0e2", 100, 95, 105),
    ],
)
def test_number_precision(text: str, value: float, low: float, high: float) -> None:
    v, lo, hi = number_range(text)
    assert v == pytest.approx(value)
    assert lo == pytest.approx(low)
    assert hi == pytest.approx(high)


def test_number_text_from_json_values() -> None:
    assert number_text(100) == "100"
    assert number_text(1.5) == "1.5"
    assert number_text(100.0) == "100.0"
    with pytest.raises(TypeError):
        number_text(True)


def test_number_invalid() -> None:
    assert number_range("abc") is None
    assert number_range("NaN") is None


# -- quantities ------------------------------------------------------------------------------


def test_canonical_mass_equal_across_units() -> None:
    assert canonical_quantity(1, UCUM, "g") == canonical_quantity(1000, UCUM, "mg")
    assert canonical_quantity(1, UCUM, "kg") == canonical_quantity(1000, UCUM, "g")
    assert canonical_quantity(250, UCUM, "ug") == canonical_quantity(0.25, UCUM, "mg")
    assert canonical_quantity(1, UCUM, "g")[1] == "g"


def test_canonical_other_dimensions() -> None:
    assert canonical_quantity(1, UCUM, "L") == canonical_quantity(1000, UCUM, "mL")
    assert canonical_quantity(1, UCUM, "L") == canonical_quantity(10, UCUM, "dL")
    assert canonical_quantity(1, UCUM, "m") == canonical_quantity(100, UCUM, "cm")
    assert canonical_quantity(2, UCUM, "h") == canonical_quantity(120, UCUM, "min")
    assert canonical_quantity(1, UCUM, "wk") == canonical_quantity(7, UCUM, "d")
    assert canonical_quantity(100, UCUM, "mg/dL") == canonical_quantity(1, UCUM, "g/L")
    assert canonical_quantity(5, UCUM, "mmol/L") == canonical_quantity(5000, UCUM, "umol/L")


def test_canonical_needs_ucum_system_and_known_unit() -> None:
    assert canonical_quantity(1, None, "mg") is None
    assert canonical_quantity(1, "http://example.org/units", "mg") is None
    assert canonical_quantity(1, UCUM, "{beats}/min{whatever}") is None
    assert canonical_quantity(1, UCUM, None) is None


def test_no_offset_units_in_table() -> None:
    # Celsius/Fahrenheit need an offset, not a factor: must not be canonicalised.
    assert canonical_quantity(37, UCUM, "Cel") is None
    assert canonical_quantity(98.6, UCUM, "[degF]") is None
    assert not math.isnan(canonical_quantity(3, UCUM, "kg")[0])


# -- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123", None)),
        ("Patient/123/_history/4", ("Patient", "123", None)),
        (
            "http://example.org/fhir/Patient/123",
            ("Patient", "123", "http://example.org/fhir/Patient/123"),
        ),
        (
            "https://example.org/fhir/Observation/a.b-1/_history/2",
            ("Observation", "a.b-1", "https://example.org/fhir/Observation/a.b-1/_history/2"),
        ),
        (
            "urn:uuid:5f0b6f0e-2c6e-4a57-9f0c-5a3b6e1d2c3b",
            (None, None, "urn:uuid:5f0b6f0e-2c6e-4a57-9f0c-5a3b6e1d2c3b"),
        ),
        ("urn:oid:1.2.3", (None, None, "urn:oid:1.2.3")),
        ("123", (None, "123", None)),
        ("#contained-1", (None, None, None)),
        ("http://example.org/something", (None, None, "http://example.org/something")),
    ],
)
def test_parse_reference(ref: str, expected: tuple) -> None:
    assert parse_reference(ref) == expected


def test_reference_type() -> None:
    assert reference_type({"reference": "Patient/1"}) == "Patient"
    assert reference_type({"reference": "urn:uuid:x", "type": "Group"}) == "Group"
    assert reference_type({"display": "Someone"}) is None
    assert reference_type("Patient/1") is None
