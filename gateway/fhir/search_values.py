"""Search values: prefixes, precision-aware date and number ranges (FHIR R4 §3.1.1.4)."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from gateway.fhir import outcomes
from gateway.store import clock

_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-+0-9.])")
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def split_prefix(value: str) -> tuple[str, str]:
    m = _PREFIX.match(value)
    return (m.group(1), value[2:]) if m else ("eq", value)


def date_range(value: str, name: str) -> tuple[int, int]:
    """'2024' → [2024-01-01T00:00Z, 2024-12-31T23:59:59.999999Z] in µs, inclusive bounds.
    A time without a zone is read as UTC."""
    m = _DATE.match(value)
    if not m:
        raise outcomes.bad_request(
            f"Invalid date '{value}' for {name}: expected YYYY, YYYY-MM, YYYY-MM-DD or a "
            "dateTime such as 2024-03-01T08:00:00+08:00", name, "GW-1310",
        )
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        if mo is None:
            low, high = datetime(int(y), 1, 1), datetime(int(y) + 1, 1, 1)
        elif d is None:
            last = calendar.monthrange(int(y), int(mo))[1]
            low = datetime(int(y), int(mo), 1)
            high = low + timedelta(days=last)
        elif hh is None:
            low = datetime(int(y), int(mo), int(d))
            high = low + timedelta(days=1)
        else:
            low = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss or 0))
            if frac:
                digits = frac[1:7]
                low = low.replace(microsecond=int(digits.ljust(6, "0")))
                high = low + timedelta(microseconds=10 ** (6 - len(digits)))
            else:
                high = low + (timedelta(seconds=1) if ss else timedelta(minutes=1))
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])) * sign
                low, high = low - offset, high - offset
    except ValueError:
        raise outcomes.bad_request(f"Invalid date '{value}' for {name}", name, "GW-1310") from None
    low, high = low.replace(tzinfo=UTC), high.replace(tzinfo=UTC)
    return clock.from_datetime(low), clock.from_datetime(high) - 1


def number_range(value: str, name: str) -> tuple[float, float, float]:
    """'100' → (100, 99.5, 100.5): the implicit range of the written precision."""
    try:
        v = float(value)
    except ValueError:
        raise outcomes.bad_request(
            f"Invalid number '{value}' for {name}", name, "GW-1311"
        ) from None
    mantissa = value.lower().split("e")[0]
    exp = int(value.lower().split("e")[1]) if "e" in value.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    half = 0.5 * 10 ** (exp - decimals)
    return v, v - half, v + half
