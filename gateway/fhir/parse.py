"""Bytes → JSON, and the envelope every resource must have (an object naming an R4 type).

What the resource holds is judged by the R4 definitions (gateway.validation: structure,
core rules, profiles; see write_check.py), never by a model library's shapes. The dict is what
the store keeps, so the client's content is stored as written, never re-serialised.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from typing import Any

import orjson

from gateway.vocab import json_io, outcomes
from gateway.vocab.definitions import r4_resource_types


@cache
def _served_set() -> frozenset[str]:
    return frozenset(r4_resource_types())


def is_resource_type(rtype: str) -> bool:
    return rtype in _served_set()


_BOM = b"\xef\xbb\xbf"
# Parsed, a JSON object costs ~0.3 KB of memory and any other value ~0.05 KB: a body may hold
# this many of each (a 3.6 MB Synthea bundle holds ~20,000 objects and ~50,000 values), so no
# request can take gigabytes, however small its body. Counted on the bytes before any parse
# (braces and commas inside strings count too: an overestimate, never an underestimate).
MAX_OBJECTS = 1_000_000
MAX_VALUES = 4_000_000


def parse_json(body: bytes | None) -> Any:
    if body and body.startswith(_BOM):
        body = body[len(_BOM) :]  # RFC 8259 §8.1: a parser MAY ignore a byte order mark
    if not body:
        raise outcomes.bad_request("The request body is empty", gw="GW-1014")
    objects = body.count(b"{")
    if objects > MAX_OBJECTS or objects + body.count(b",") > MAX_VALUES:
        raise outcomes.error(
            413,
            "too-costly",
            "GW-1035",
            f"The body holds more than {MAX_OBJECTS:,} JSON objects or {MAX_VALUES:,} values: "
            "split it into smaller bundles",
        )
    try:
        doc = orjson.loads(body)  # strict syntax and UTF-8
    except orjson.JSONDecodeError as exc:
        raise outcomes.malformed_json(str(exc)) from None
    if type(doc) is dict or type(doc) is list:
        # Parsed again: repeated properties, and decimals as Decimal (precision kept).
        return _exact_unique(body)
    return doc


class _DuplicateKey(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


_DUP = "\ue001duplicates"  # marks an object with repeated keys (not a valid JSON name here)


def _marked(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        obj[_DUP] = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _exact_unique(body: bytes) -> Any:
    """The body with decimals as Decimal; a 400 when an object repeats a property (R4
    json.html: a property appears at most once; orjson keeps the last one silently). Only a
    rejected body pays for locating the object."""
    try:
        return json_io.loads_exact(body, object_pairs_hook=_unique)
    except _DuplicateKey:
        pass
    except RecursionError:  # orjson took it (≤ 1024 levels); Python's parser recurses less
        raise outcomes.bad_request("The body is nested too deeply", gw="GW-1103") from None
    root = json.loads(body, object_pairs_hook=_marked)
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if type(node) is dict:
            if _DUP in node:
                rtype = root.get("resourceType") if type(root) is dict else None
                where = fhirpath_of(rtype if isinstance(rtype, str) else "$", loc)
                keys = ", ".join(node[_DUP])
                raise outcomes.bad_request(
                    f"Malformed JSON: property '{keys}' appears more than once in {where}",
                    f"{where}.{node[_DUP][0]}",
                    "GW-1001",
                )
            stack.extend((v, (*loc, k)) for k, v in node.items())
        elif type(node) is list:
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))
    raise AssertionError("a repeated key the second parse did not find")


def fhirpath_of(root: str, loc: tuple[Any, ...], keep_last: bool = False) -> str:
    """('name', 0, 'given', 1) → 'Patient.name[0].given[1]'. A primitive's JSON extension
    key `_given` is the element `given` in FHIRPath (its `.extension` lives there); with
    keep_last the last name is kept as written (an unknown key)."""
    out = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("_") and len(part) > 1 and not (keep_last and i == len(loc) - 1):
            out += f".{part[1:]}"
        else:
            out += f".{part}"
    return out


def check_envelope(resource: Any, expected_type: str | None = None, where: str = "") -> str:
    """`resource` is a JSON object naming an R4 resource type (the URL's, when one is given);
    returns the type. `where` prefixes FHIRPath locations (e.g. 'Bundle.entry[3].resource')."""
    root = where or (resource.get("resourceType") if isinstance(resource, dict) else None) or "$"
    if not isinstance(resource, dict):
        raise outcomes.bad_request("The body must be a JSON object (a FHIR resource)", root)
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise outcomes.bad_request(
            "Missing resourceType", f"{root}.resourceType" if where else None
        )
    if expected_type and rtype != expected_type:
        raise outcomes.bad_request(
            f"resourceType '{rtype}' does not match the URL's type '{expected_type}'",
            f"{where}.resourceType" if where else "resourceType",
            gw="GW-1015",
        )
    if not is_resource_type(rtype):
        raise outcomes.bad_request(
            f"Unknown resource type '{rtype}'",
            f"{where}.resourceType" if where else "resourceType",
            gw="GW-1016",
        )
    return rtype
