"""Does a date search parameter give at most one index row per resource? (R4 core snapshots.)

It does when its expression, split for the type, is one plain path whose every element has
max cardinality 1 (`Encounter.period`, `Observation.effective`): every type yields at most
one date row (a Timing is indexed as one row spanning its outer limits, other types none).
Search then evaluates several clauses on that parameter (`date=ge2015&date=lt2016`) against
the one row together, which is what the spec's AND means when there is one value, and the
database scans one range instead of intersecting two large sets. Anything not provably single
(unions, functions, repeating elements, unknown paths) counts as several rows.
"""

from __future__ import annotations

from functools import cache

from gateway.search.paths import Field, OfType, ResolveIs, WhereEq, parse_steps
from gateway.search.registry import split_for_type
from gateway.vocab.definitions import load_shipped


@cache
def _elements() -> dict[str, tuple[str, list[str]]]:
    """element path → (max, type codes), for every core resource and data type."""
    core = load_shipped()
    out: dict[str, tuple[str, list[str]]] = {}
    for sd in core["structureDefinitions"]:
        if sd.get("derivation") == "constraint":
            continue  # profiles (vitalsigns, …) restate base elements
        for el in (sd.get("snapshot") or {}).get("element", ()):
            types = [t.get("code", "") for t in el.get("type", ())]
            out.setdefault(el["id"], (str(el.get("max", "*")), types))
    return out


def _child(context: str, name: str) -> tuple[str, list[str]] | None:
    """(path, types) of element `name` under `context`; types empty when it repeats."""
    elements = _elements()
    for key in (f"{context}.{name}", f"{context}.{name}[x]"):
        found = elements.get(key)
        if found is not None:
            return key, found[1] if found[0] == "1" else []
    return None


@cache
def one_date_row(resource_type: str, expression: str) -> bool:
    parts = split_for_type(expression, resource_type)
    if len(parts) != 1:
        return False
    parsed = parse_steps(parts[0])
    if parsed is None or parsed[0] != resource_type:
        return False
    context = resource_type  # path or type whose children the next field names
    types: list[str] | None = None  # types of the element at `context` (None: the root)
    for step in parsed[1]:
        if isinstance(step, OfType):
            types = [step.type]  # a choice narrowed to one of its types
            continue
        if isinstance(step, ResolveIs | WhereEq):
            continue  # filters: never more values than before
        assert isinstance(step, Field)
        if types is not None:
            if len(types) != 1:
                return False  # below a choice of several types: not followed
            if types[0] not in ("BackboneElement", "Element"):
                context = types[0]  # into a data type (a backbone's children stay under it)
        found = _child(context, step.name)
        if found is None:
            return False
        context, types = found
        if not types:
            return False  # repeats (max != 1), or no type to follow
    return True
