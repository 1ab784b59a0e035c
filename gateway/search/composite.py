"""Composite search parameters (R4 search §3.1.1.5.8): components that hold of one element.

``component-code-value-quantity`` has base ``Observation.component`` and two components, a
token (``code``) and a quantity (``value.ofType(Quantity)``), each defined by another
SearchParameter and evaluated relative to one element of the base. Every element yields the
ordinary index rows of each component, named ``<code>$<i>`` and numbered with the element's
``grp``; the search matches component 0 and joins the others on (resource, grp), so
``8480-6$gt100`` never pairs the systolic code with the diastolic value. An element missing a
component yields nothing (it could never match).

Components are compiled with the fast path compiler only (gateway.search.paths); a composite
with a component it cannot compile (MolecularSequence's ``%resource…`` ones) or that yields no
rows on a type (R4's DocumentReference ``relationship`` swaps its expressions) is not served.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from operator import attrgetter
from typing import Any

from gateway.search.convert import Emit, emitter
from gateway.search.paths import compile_linear, compile_relative, parses_relative, walk
from gateway.search.registry import (
    SearchParameter,
    SearchParamRegistry,
    split_for_type,
    split_union,
)
from gateway.store.rows import (
    DateRow,
    IndexRows,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)

# grp is a SMALLINT: elements past this are not indexed (no real resource comes near).
MAX_GROUPS = 32767


def component_code(code: str, i: int) -> str:
    """The index-row param of a composite's i-th component."""
    return f"{code}${i}"


@lru_cache(maxsize=4096)
def served_components(
    registry: SearchParamRegistry, resource_type: str, p: SearchParameter
) -> tuple[str, ...] | None:
    """The component types of composite p on resource_type when it is indexed there, else None
    (what the search parser accepts and the CapabilityStatement lists)."""
    if compile_composite(registry, resource_type, p) is None:
        return None
    return component_types(registry, p)


def component_types(registry: SearchParamRegistry, p: SearchParameter) -> tuple[str, ...] | None:
    """The component parameters' types, or None when a component definition is unknown or an
    expression is one the fast compiler cannot take."""
    if p.type != "composite" or len(p.component) < 2:
        return None
    types = []
    for comp in p.component:
        sp = registry.by_url(comp.definition)
        if sp is None or sp.type in ("composite", "special"):
            return None
        for part in split_union(comp.expression):
            if not parses_relative(part):
                return None
        types.append(sp.type)
    return tuple(types)


@dataclass(slots=True)
class CompositePlan:
    param: SearchParameter
    # Per base path: ops from the resource to the base elements; per component its
    # (ops from the element, emitter) pairs; per component the JSON keys its paths start with
    # (empty when some path does not start with a key).
    bases: list[
        tuple[
            tuple[Any, ...],
            list[list[tuple[tuple[Any, ...], Emit]]],
            list[frozenset[str]],
        ]
    ]

    def extract(self, resource: dict, rows: IndexRows) -> None:
        grp = 0
        for base_ops, components, keys in self.bases:
            for element in walk(resource, base_ops) if base_ops else [resource]:
                if grp >= MAX_GROUPS:
                    return
                parts = _element_rows(element, components, keys)
                if parts is not None:
                    for part in parts:
                        _add_grouped(part, grp, rows)
                grp += 1


def _element_rows(
    element: Any,
    components: list[list[tuple[tuple[Any, ...], Emit]]],
    keys: list[frozenset[str]],
) -> list[IndexRows] | None:
    # An element lacking every first key of some component can never match: most elements
    # (an Observation has one value type) fail here, before any row is built.
    if type(element) is dict and any(k and k.isdisjoint(element) for k in keys):
        return None
    parts = []
    for paths in components:
        part = IndexRows()
        for ops, emit in paths:
            for x in walk(element, ops) if ops else [element]:
                emit(x, part)
        if not _has_value(part):
            return None  # a component without a value: the element can never match
        parts.append(part)
    return parts


def _has_value(part: IndexRows) -> bool:
    # A token component matches by code: a CodeableConcept with only text is no value.
    return any(r.code for r in part.token) or any(
        getattr(part, kind) for kind in IndexRows.TABLES if kind != "token"
    )


# Per row class: its fields but grp, to rebuild a row with a group without dataclasses.replace.
_WITHOUT_GRP = {
    cls: attrgetter(*(f.name for f in fields(cls) if f.name != "grp"))
    for cls in (TokenRow, StringRow, DateRow, NumberRow, QuantityRow, ReferenceRow, UriRow)
}


def _add_grouped(part: IndexRows, grp: int, rows: IndexRows) -> None:
    for kind in IndexRows.TABLES:
        found = getattr(part, kind)
        if not found:
            continue
        target = getattr(rows, kind)
        if kind == "token":  # :text is not a composite modifier: codes only
            target.update(TokenRow(r.param, r.system, r.code, None, grp) for r in found if r.code)
            continue
        for r in found:
            cls = type(r)
            target.add(cls(*_WITHOUT_GRP[cls](r), grp))


def _first_keys(paths: list[tuple[tuple[Any, ...], Emit]]) -> frozenset[str]:
    firsts = [ops[0] if ops and type(ops[0]) is str else None for ops, _ in paths]
    return frozenset() if None in firsts else frozenset(firsts)  # type: ignore[arg-type]


def compile_composite(
    registry: SearchParamRegistry, resource_type: str, p: SearchParameter
) -> CompositePlan | None:
    """The extraction plan of composite p on resource_type, or None when it is not served."""
    if component_types(registry, p) is None or not p.expression:
        return None
    defs = [registry.by_url(c.definition) for c in p.component]
    bases = []
    for part in split_for_type(p.expression, resource_type):
        linear = compile_linear(resource_type, part)
        if linear is None:
            return None
        for base in linear:
            components = []
            for i, (comp, sp) in enumerate(zip(p.component, defs, strict=True)):
                assert sp is not None
                named = replace(sp, code=component_code(p.code, i))
                paths: list[tuple[tuple[Any, ...], Emit]] = []
                for comp_part in split_union(comp.expression):
                    rel = compile_relative(base.type, comp_part)
                    if rel is None:
                        return None
                    paths.extend(
                        (lp.ops, emit)
                        for lp in rel
                        if (emit := emitter(named, lp.type)) is not None
                    )
                if not paths:
                    return None  # R4's DocumentReference `relationship` swaps its expressions
                components.append(paths)
            bases.append((base.ops, components, [_first_keys(paths) for paths in components]))
    return CompositePlan(p, bases) if bases else None
