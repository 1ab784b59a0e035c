"""FHIR JSON in and out with numbers kept as written.

json.html: "decimal values ... the precision must be preserved" — `1.50` is not `1.5`, and
`0.0000001` is not `1E-7`. Request bodies are parsed with every JSON number that has a fraction
or an exponent (and every integer beyond 64 bits, which orjson cannot write) as a Decimal that
remembers its text, and serialised back from that text (orjson.Fragment).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from gateway.vocab import outcomes

_INT64 = (-(2**63), 2**64 - 1)  # what orjson writes natively (it also takes unsigned 64-bit)


class JsonNumber(Decimal):
    """A Decimal that keeps the exact text it was read from."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonNumber:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj

    # Immutable: copies and pickles keep the text (Decimal's would rebuild from str(self)).
    def __copy__(self) -> JsonNumber:
        return self

    def __deepcopy__(self, memo: Any) -> JsonNumber:
        return self

    def __reduce__(self) -> tuple[type[JsonNumber], tuple[str]]:
        return (JsonNumber, (self.text,))


def _int(text: str) -> int | JsonNumber:
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else JsonNumber(text)


def _exact(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        return orjson.Fragment(value.text.encode())
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any, option: int | None = None) -> bytes:
    """orjson.dumps, with Decimals written as their exact text. Nesting beyond what orjson
    writes (255 levels) is a 400: such a document could be stored but never served."""
    try:
        return orjson.dumps(value, default=_exact, option=option)
    except orjson.JSONEncodeError as exc:
        if "ecursion" in str(exc):
            raise outcomes.bad_request("The resource is nested too deeply", gw="GW-1103") from None
        raise


def loads_exact(data: bytes | str, **hooks: Any) -> Any:
    """JSON with its decimals (and very large integers) as JsonNumber."""
    return json.loads(data, parse_float=JsonNumber, parse_int=_int, **hooks)


def json_copy(node: Any) -> Any:
    """A copy of a JSON-like tree (dicts, lists; the leaves, str, numbers, Decimal, bool and
    None, are immutable and shared): what copy.deepcopy gives, several times faster."""
    if isinstance(node, dict):
        return {k: json_copy(v) if isinstance(v, dict | list) else v for k, v in node.items()}
    if isinstance(node, list):
        return [json_copy(v) if isinstance(v, dict | list) else v for v in node]
    return node
