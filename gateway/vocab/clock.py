"""Server time as integer microseconds (UTC), strictly increasing within a process."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

_lock = threading.Lock()
_last = 0


def now_us() -> int:
    global _last
    with _lock:
        t = time.time_ns() // 1000
        _last = t if t > _last else _last + 1
        return _last


def to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def to_instant(us: int) -> str:
    """FHIR instant, UTC, microsecond precision: 2026-11-22T05:45:38.123456Z."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_instant_seconds(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=256)
def _instant_seconds(seconds: int) -> str:
    # A bundle stamps thousands of versions within the same few seconds.
    return to_datetime(seconds * 1_000_000).strftime("%Y-%m-%dT%H:%M:%S")


def to_http_date(us: int) -> str:
    return format_datetime(to_datetime(us), usegmt=True)


def from_datetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_http_date(value: str) -> int | None:
    try:
        return from_datetime(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None
