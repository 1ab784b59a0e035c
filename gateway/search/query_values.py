"""Search values: prefixes, and the precision-aware date and number ranges of query values.

The ranges come from gateway.search.values, the same functions that index resources, so a
query and the data it should match are read the same way; here they only gain a 400 on bad input.
"""

from __future__ import annotations

import re

from gateway.search import values
from gateway.vocab import clock, outcomes

_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-+0-9.])")


def split_prefix(value: str) -> tuple[str, str]:
    m = _PREFIX.match(value)
    return (m.group(1), value[2:]) if m else ("eq", value)


def date_range(value: str, name: str) -> tuple[int, int]:
    """'2024' → the whole year, as inclusive µs bounds (UTC; a time without a zone is UTC)."""
    rng = values.date_range(value)
    if rng is None:
        raise outcomes.bad_request(
            f"Invalid date '{value}' for {name}: expected YYYY, YYYY-MM, YYYY-MM-DD or a "
            "dateTime such as 2024-03-01T08:00:00+08:00",
            name,
            "GW-1310",
        )
    return clock.from_datetime(rng[0]), clock.from_datetime(rng[1])


def number_range(value: str, name: str) -> tuple[float, float, float]:
    """'100' → (100, 99.5, 100.5): the implicit range of the written precision."""
    rng = values.number_range(value)
    if rng is None:
        raise outcomes.bad_request(f"Invalid number '{value}' for {name}", name, "GW-1311")
    return rng
