"""FHIR JSON in and out with decimals kept as written.

json.html: "decimal values ... the precision must be preserved" — `1.50` is not `1.5`. Request
bodies are parsed with Decimal for every JSON number that has a fraction or an exponent, and
serialised back from its exact text (orjson.Fragment), so a stored resource keeps `1.50`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any, option: int | None = None) -> bytes:
    """orjson.dumps, with Decimals written as their exact text."""
    return orjson.dumps(value, default=_exact, option=option)


def loads_exact(data: bytes | str) -> Any:
    """Stored or sent JSON with its decimals as Decimal (for whatever is written back)."""
    import json

    return json.loads(data, parse_float=Decimal)
