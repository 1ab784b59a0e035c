"""Source values as regional systems write them, converted to FHIR primitives.

Dates arrive as 2024-01-05, 2024/1/5, 2024.01.05, 20240105 or 2024年1月5日; date-times add a
time (`2024-01-05 10:20`, `…T10:20:00`) and, without a zone, are taken in the spec's zone
(China Standard Time by default). Numbers keep their value (an integral amount is an integer);
yes/no fields take 是/否, Y/N, 1/0, true/false. A value that does not convert raises
`ValueProblem` with a message naming what was expected; the caller adds the field.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

KINDS = ("string", "date", "dateTime", "decimal", "integer", "boolean")

_DATE = re.compile(
    r"(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|年(?P<m2>\d{1,2})月(?P<d2>\d{1,2})日?"
    r"|(?P<m3>\d{2})(?P<d3>\d{2}))"
)
_TIME = re.compile(
    r"(?P<h>\d{1,2})[:：](?P<mi>\d{2})(?:[:：](?P<s>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<z>Z|[+-]\d{2}:?\d{2})?"
)
_TRUE = {"是", "y", "yes", "true", "1", "t", "√"}
_FALSE = {"否", "n", "no", "false", "0", "f", "×"}


class ValueProblem(ValueError):
    """A source value that does not convert; the message says what was expected."""


def clean(value: Any) -> Any:
    """Strings trimmed (full-width spaces too) and empty ones absent; other values as given."""
    if isinstance(value, str):
        value = value.strip().strip("\u3000").strip()
        return value or None
    return value


def fold(text: str) -> str:
    """The form code tables compare in: full-width letters and digits as ASCII, lower case."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def convert(kind: str, value: Any, zone: str = "+08:00") -> Any:
    if kind == "string":
        return value if isinstance(value, str) else _text(value)
    text = _text(value)
    if kind == "date":
        return to_date(text)
    if kind == "dateTime":
        return to_date_time(text, zone)
    if kind == "decimal":
        return to_number(text)
    if kind == "integer":
        number = to_number(text)
        if not isinstance(number, int):
            raise ValueProblem(f"'{text}' is not a whole number")
        return number
    if kind == "boolean":
        return to_boolean(text)
    raise AssertionError(kind)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueProblem(f"expected a single value, got {type(value).__name__}")


def to_date(text: str) -> str:
    m = _DATE.fullmatch(unicodedata.normalize("NFKC", text).strip())
    if m is None:
        raise ValueProblem(
            f"'{text}' is not a date (2024-01-05, 2024/01/05, 20240105 or 2024年1月5日)"
        )
    return _iso_date(m)


def _iso_date(m: re.Match[str]) -> str:
    year = int(m["y"])
    month = int(m["m"] or m["m2"] or m["m3"])
    day = int(m["d"] or m["d2"] or m["d3"])
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        raise ValueProblem(f"{year}-{month:02d}-{day:02d} is not a calendar date") from None


def to_date_time(text: str, zone: str) -> str:
    norm = unicodedata.normalize("NFKC", text).strip()
    m = _DATE.match(norm)
    if m is None:
        raise ValueProblem(f"'{text}' is not a date-time (2024-01-05 10:20:00)")
    date = _iso_date(m)
    rest = norm[m.end() :].lstrip("T ").strip()
    if not rest:
        return date  # a dateTime may be a date (R4 datatypes.html#dateTime)
    t = _TIME.fullmatch(rest)
    if t is None or int(t["h"]) > 23 or int(t["mi"]) > 59 or int(t["s"] or 0) > 59:
        raise ValueProblem(f"'{text}' has no valid time of day (HH:MM or HH:MM:SS)")
    z = t["z"] or zone
    if z != "Z" and ":" not in z:
        z = f"{z[:3]}:{z[3:]}"
    return f"{date}T{int(t['h']):02d}:{t['mi']}:{t['s'] or '00'}{t['f'] or ''}{z}"


def to_number(text: str) -> int | float:
    norm = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    try:
        d = Decimal(norm)
    except InvalidOperation:
        raise ValueProblem(f"'{text}' is not a number") from None
    if not d.is_finite():
        raise ValueProblem(f"'{text}' is not a number")
    return int(d) if d == d.to_integral_value() else float(d)


def to_boolean(text: str) -> bool:
    key = fold(text)
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueProblem(f"'{text}' is not yes or no (是/否)")


def native(kind: str, value: Any) -> Any:
    """A FHIR value back in the shape the native record uses (the reverse of `convert`)."""
    if kind == "boolean":
        return "是" if value else "否"
    return value
