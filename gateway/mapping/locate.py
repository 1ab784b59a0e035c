"""A FHIR location a validator or rule reports (`Bundle.entry[2].resource.value.ofType(Coding)`)
→ the source fields the mapping filled it from."""

from __future__ import annotations

import re

from gateway.mapping.render import Locations

_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource(?:\.|$)")
_OF_TYPE = re.compile(r"(\w+)\.ofType\((\w)(\w*)\)")
_CALL = re.compile(r"\.\w+\(.*$")


def entry_path(expression: str) -> tuple[int, str] | None:
    """`Bundle.entry[2].resource.status` → (2, "status"); None outside an entry's resource."""
    m = _ENTRY.match(expression)
    if m is None:
        return None
    return int(m.group(1)), normalise(expression[m.end() :])


def normalise(path: str) -> str:
    """A validator's FHIRPath in the form the renderer records: choice types as element names
    (value.ofType(Coding) → valueCoding), function calls beyond that cut off."""
    path = _OF_TYPE.sub(lambda m: m.group(1) + m.group(2).upper() + m.group(3), path)
    return _CALL.sub("", path)


def relative(expression: str, res_type: str) -> str:
    """`Patient.identifier[0]` → `identifier[0]` (an issue located at a resource outside a
    Bundle, as a write hook reports it)."""
    if expression == res_type:
        return ""
    if expression.startswith(res_type + "."):
        return normalise(expression[len(res_type) + 1 :])
    return normalise(expression)


def fields_at(locations: Locations, path: str) -> list[str]:
    """The fields behind `path`: those of the nearest filled value at or above it; else, when
    it is an element holding filled values, all of theirs (never all of a whole resource)."""
    best: tuple[int, tuple[str, ...]] | None = None
    for loc, fields in locations:
        if _within(path, loc) and (best is None or len(loc) > best[0]):
            best = (len(loc), fields)
    if best is not None:
        return list(best[1])
    if not path:
        return []
    out: list[str] = []
    for loc, fields in locations:
        if _within(loc, path):
            out += [f for f in fields if f not in out]
    return out


def _within(path: str, ancestor: str) -> bool:
    if not ancestor:
        return True
    return path == ancestor or (path.startswith(ancestor) and path[len(ancestor)] in ".[")
