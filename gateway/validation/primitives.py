"""FHIR R4 primitive values: JSON form, the spec's regex, and what the regex cannot say.

Beyond the regexes: real calendar dates (no 2024-02-31), integer ranges, a time zone on every
value with a time, and no empty strings. `check(type, value)` returns None when the value is
fine, else `(message id, fields)` for the issue.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Problem = tuple[str, dict[str, Any]] | None

_INT32 = (-(2**31), 2**31 - 1)
_DT_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_TIME_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?$")
# datatypes.html: strings SHALL NOT contain characters below 32 other than tab, CR and LF.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Fractional seconds: the reference validator takes at most 9 digits (nanoseconds).
_MAX_FRACTION = 9
_PATTERNS = {
    "code": re.compile(r"^[^\s]+( [^\s]+)*$"),
    "id": re.compile(r"^[A-Za-z0-9\-.]{1,64}$"),
    "uri": re.compile(r"^\S+$"),
    "url": re.compile(r"^\S+$"),
    "canonical": re.compile(r"^\S+$"),
    "oid": re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$"),
    "uuid": re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
}
_STRING_TYPES = frozenset(
    "string code id uri url canonical oid uuid markdown base64Binary date dateTime instant time "
    "xhtml".split()
)
MAX_STRING = 1024 * 1024


def _bad(type_code: str, value: Any) -> Problem:
    return "VAL-1007", {"value": _short(value), "type": type_code}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong_json(type_code: str, expected: str) -> Problem:
    return "VAL-1006", {"type": type_code, "expected": expected}


def _tz_ok(tz: str | None) -> bool:
    if tz is None or tz == "Z":
        return True
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    return (hours < 14 and minutes < 60) or (hours == 14 and minutes == 0)


def check_temporal(type_code: str, value: str) -> Problem:
    """date, dateTime, instant: shape, calendar, time-zone rules."""
    m = _DT_RE.match(value)
    if not m:
        return _bad(type_code, value)
    year, month, day, hour, minute, second, frac, tz = m.groups()
    if frac is not None and len(frac) - 1 > _MAX_FRACTION:
        return _bad(type_code, value)
    if year == "0000" or (month and not 1 <= int(month) <= 12):
        return "VAL-1008", {"value": value}
    if day and not 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]:
        return "VAL-1008", {"value": value}
    if hour is not None:
        if int(hour) > 23 or int(minute) > 59 or (second and int(second) > 60):
            return "VAL-1008", {"value": value}
        if type_code == "date" or second is None:
            return _bad(type_code, value)
        if tz is None:
            return "VAL-1010", {"value": value}
        if not _tz_ok(tz):
            return _bad(type_code, value)
    if type_code == "instant" and hour is None:
        return _bad(type_code, value)
    return None


def _check_time(value: str) -> Problem:
    m = _TIME_RE.match(value)
    if not m or (m.group(4) is not None and len(m.group(4)) - 1 > _MAX_FRACTION):
        return _bad("time", value)
    if int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3)) > 60:
        return "VAL-1008", {"value": value}
    return None


def _check_base64(value: str) -> Problem:
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return _bad("base64Binary", value)
    return None


def _check_xhtml(value: str) -> Problem:
    if not value.lstrip().startswith("<div"):
        return _bad("xhtml", value)
    return None


_STRING_CHECKS: dict[str, Callable[[str], Problem]] = {
    "date": lambda v: check_temporal("date", v),
    "dateTime": lambda v: check_temporal("dateTime", v),
    "instant": lambda v: check_temporal("instant", v),
    "time": _check_time,
    "base64Binary": _check_base64,
    "xhtml": _check_xhtml,
}


def _check_number(type_code: str, value: Any) -> Problem:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return _wrong_json(type_code, "JSON number")
    if type_code == "decimal":
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return None if finite else _bad(type_code, value)
    if not isinstance(value, int):
        return _bad(type_code, value)
    low = 1 if type_code == "positiveInt" else 0 if type_code == "unsignedInt" else _INT32[0]
    if not low <= value <= _INT32[1]:
        return "VAL-1009", {"value": value, "type": type_code}
    return None


def check(type_code: str, value: Any) -> Problem:
    """Check one primitive JSON value against its FHIR type (None when fine)."""
    if type_code == "boolean":
        return None if isinstance(value, bool) else _wrong_json(type_code, "true or false")
    if type_code in ("integer", "positiveInt", "unsignedInt", "decimal"):
        return _check_number(type_code, value)
    if type_code not in _STRING_TYPES:
        return None
    if not isinstance(value, str):
        return _wrong_json(type_code, "JSON string")
    if value == "":
        return "VAL-1011", {}
    if len(value) > MAX_STRING:
        return "VAL-1015", {"length": len(value), "max": MAX_STRING}
    if _CONTROL.search(value):
        return "VAL-1019", {}
    special = _STRING_CHECKS.get(type_code)
    if special is not None:
        return special(value)
    pattern = _PATTERNS.get(type_code)
    if pattern is not None and not pattern.match(value):
        return _bad(type_code, value)
    return None


PRIMITIVE_TYPES = frozenset(
    _STRING_TYPES | {"boolean", "integer", "positiveInt", "unsignedInt", "decimal"}
)


def is_primitive(type_code: str) -> bool:
    return type_code in PRIMITIVE_TYPES
