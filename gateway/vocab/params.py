"""Parsing of common request parameters (_count, _since, instants)."""

from __future__ import annotations

from datetime import datetime

from gateway.vocab import clock, outcomes


def parse_instant(value: str, name: str) -> int:
    """A FHIR instant/dateTime (timezone required for instants; none means UTC) → µs."""
    v = value.strip()
    try:
        if len(v) == 4:
            dt = datetime(int(v), 1, 1)
        elif len(v) == 7:
            dt = datetime(int(v[:4]), int(v[5:7]), 1)
        else:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise outcomes.bad_request(
            f"Invalid value '{value}' for {name}: expected an instant such as 2024-01-01T00:00:00Z",
            name,
            gw="GW-1024",
        ) from None
    return clock.from_datetime(dt)


def parse_count(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not is_uint(value):
        raise outcomes.bad_request(
            f"Invalid _count '{value}': expected a non-negative integer", "_count", gw="GW-1025"
        )
    return min(int(value), maximum)


# The largest value a BIGINT column holds (versions, history ids).
MAX_BIGINT = 2**63 - 1


def is_uint(value: str) -> bool:
    """ASCII digits only (str.isdigit also takes '１' and other scripts' digits)."""
    return value.isascii() and value.isdigit()


def parse_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not is_uint(value) or int(value) > MAX_BIGINT:
        raise outcomes.bad_request(f"Invalid {name} '{value}'", name, gw="GW-1026")
    return int(value)
