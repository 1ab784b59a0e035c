"""Compile simple FHIRPath search expressions into direct dict-walk accessors.

A search expression part (already split per resource type, see registry.split_for_type) is
compiled at load time, against the R4 type model that ships with fhirpathpy, into one or more
*linear paths*: a sequence of JSON keys and value filters ending in a statically known FHIR type.
Choice elements (``Observation.effective``) expand into one linear path per alternative
(effectiveDateTime, effectivePeriod, …); ``.ofType(T)`` prunes alternatives statically.

Supported steps (anything else → None, and the caller falls back to fhirpathpy):
  ``.name``                         element navigation (incl. choice types, inherited elements)
  ``.ofType(T)``                    type filter (static)
  ``.where(resolve() is T)``        reference target type from the reference string / type
  ``.where(name = 'literal')``      equality on a single primitive child
  ``X.exists() and X != false``     (Patient.deceased) boolean
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirpathpy.models import models

from gateway.search.values import reference_type

MODEL: dict[str, Any] = models["r4"]
PATH2TYPE: dict[str, str] = MODEL["path2Type"]
CHOICES: dict[str, list[str]] = MODEL["choiceTypePaths"]
ELSEWHERE: dict[str, str] = MODEL["pathsDefinedElsewhere"]
TYPE2PARENT: dict[str, str] = MODEL["type2Parent"]
PRIMITIVES = frozenset(t for t in TYPE2PARENT if t[0].islower())
BACKBONE = frozenset(
    k.rsplit(".", 1)[0] for k in PATH2TYPE if k.rsplit(".", 1)[0] not in PATH2TYPE
) | frozenset(k.rsplit(".", 1)[0] for k in CHOICES)

BOOLEAN_TYPE = "System.Boolean"


def is_type(type_name: str | None, super_type: str) -> bool:
    """Same subtype walk as fhirpathpy's TypeInfo.is_type (type2Parent, then path2Type)."""
    seen = 0
    while type_name and seen < 32:
        if type_name == super_type:
            return True
        type_name = TYPE2PARENT.get(type_name) or PATH2TYPE.get(type_name)
        seen += 1
    return False


def choice_suffix_type(suffix: str) -> str:
    low = suffix[0].lower() + suffix[1:]
    return low if low in PRIMITIVES else suffix


def child_types(parent: str, name: str) -> list[tuple[str, str]] | None:
    """JSON key(s) and FHIR type(s) of element `name` under type/backbone path `parent`."""
    t: str | None = parent
    while t:
        t = ELSEWHERE.get(t, t)
        key = f"{t}.{name}"
        if key in CHOICES:
            return [(name + s, choice_suffix_type(s)) for s in CHOICES[key]]
        ty = PATH2TYPE.get(key)
        if ty is not None:
            return [(name, key if ty in ("BackboneElement", "Element") else ty)]
        if key in BACKBONE or key in ELSEWHERE:
            return [(name, key)]
        t = TYPE2PARENT.get(t)
    return None


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclass(frozen=True, slots=True)
class OfType:
    type: str


@dataclass(frozen=True, slots=True)
class ResolveIs:
    type: str


@dataclass(frozen=True, slots=True)
class WhereEq:
    name: str
    literal: str


Step = Field | OfType | ResolveIs | WhereEq

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STEP_RE = re.compile(
    rf"\.(?:ofType\((?P<oftype>{_IDENT})\)"
    rf"|where\(\s*resolve\(\)\s+is\s+(?P<resolve>{_IDENT})\s*\)"
    rf"|where\(\s*(?P<wname>{_IDENT})\s*=\s*'(?P<wlit>[^'\\]*)'\s*\)"
    rf"|(?P<field>{_IDENT})(?![A-Za-z0-9_(]))"
)
# FHIRPath System type names for FHIR primitives: R4's code-value-date component says
# `value.ofType(DateTime)` for the FHIR dateTime.
_SYSTEM_TYPES = {
    "Boolean": "boolean",
    "String": "string",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
}
_CONTEXT = "_context"  # stands for the context element in compile_relative
_DECEASED_RE = re.compile(rf"^({_IDENT}(?:\.{_IDENT})+)\.exists\(\) and \1 != false$")


def _matching_paren(s: str) -> int:
    """Index of the ')' closing the '(' at s[0], or -1."""
    depth = 0
    for i, ch in enumerate(s):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _unwrap_prefix_parens(part: str) -> str:
    """'(A.b.ofType(T)).text' → 'A.b.ofType(T).text' (parens around a path prefix)."""
    while part.startswith("("):
        end = _matching_paren(part)
        if end < 0:
            return part
        rest = part[end + 1 :]
        if rest and not rest.startswith("."):
            return part
        part = part[1:end].strip() + rest
    return part


def parse_steps(part: str) -> tuple[str, list[Step]] | None:
    part = _unwrap_prefix_parens(part.strip())
    m = re.match(_IDENT, part)
    if m is None:
        return None
    head = m.group(0)
    pos = m.end()
    steps: list[Step] = []
    while pos < len(part):
        sm = _STEP_RE.match(part, pos)
        if sm is None:
            return None
        if sm.group("oftype"):
            steps.append(OfType(sm.group("oftype")))
        elif sm.group("resolve"):
            steps.append(ResolveIs(sm.group("resolve")))
        elif sm.group("wname"):
            steps.append(WhereEq(sm.group("wname"), sm.group("wlit")))
        else:
            steps.append(Field(sm.group("field")))
        pos = sm.end()
    return head, steps


# --------------------------------------------------------------------------------------------
# Compiling

Filter = Callable[[Any], bool]
Op = str | Filter  # a JSON key, or a predicate applied to each current value


@dataclass(frozen=True, slots=True)
class LinearPath:
    ops: tuple[Op, ...]
    type: str  # FHIR type of the values it yields


def _resolve_filter(target: str) -> Filter:
    def pred(v: Any) -> bool:
        return is_type(reference_type(v), target)

    return pred


def _where_filter(name: str, literal: str) -> Filter:
    def pred(v: Any) -> bool:
        if type(v) is not dict:
            return False
        x = v.get(name)
        if type(x) is list:
            if len(x) != 1:
                return False
            x = x[0]
        return type(x) is str and x == literal

    return pred


def compile_linear(resource_type: str, part: str) -> list[LinearPath] | None:
    """Compile one union part into linear paths, or None if not supported."""
    parsed = parse_steps(part)
    if parsed is None:
        return None
    head, steps = parsed
    if head != resource_type:
        return None
    return _compile_steps(resource_type, steps)


def parses_relative(part: str) -> bool:
    """Whether compile_relative can take this part (for some context type)."""
    return parse_steps(f"{_CONTEXT}.{part.strip()}") is not None


def compile_relative(context_type: str, part: str) -> list[LinearPath] | None:
    """Compile one union part relative to an element of context_type (a composite
    parameter's component, e.g. `value.ofType(Quantity)` on `Observation.component`)."""
    parsed = parse_steps(f"{_CONTEXT}.{part.strip()}")
    if parsed is None or parsed[0] != _CONTEXT:
        return None
    return _compile_steps(context_type, parsed[1])


def _compile_steps(resource_type: str, steps: list[Step]) -> list[LinearPath] | None:
    alts: list[tuple[tuple[Op, ...], str]] = [((), resource_type)]
    for step in steps:
        nxt: list[tuple[tuple[Op, ...], str]] = []
        for ops, ty in alts:
            if isinstance(step, Field):
                kids = child_types(ty, step.name)
                if kids is None or ty == "Resource" or is_resource_type(ty) and ops:
                    return None  # unknown element, or inside a nested resource: dynamic
                nxt.extend(((*ops, key), kt) for key, kt in kids)
            elif isinstance(step, OfType):
                if ty == "Resource" or (is_resource_type(ty) and ops):
                    return None
                if is_type(ty, _SYSTEM_TYPES.get(step.type, step.type)):
                    nxt.append((ops, ty))
            elif isinstance(step, ResolveIs):
                nxt.append(((*ops, _resolve_filter(step.type)), ty))
            else:
                kids = child_types(ty, step.name)
                if kids is None or len(kids) != 1 or not _is_primitive(kids[0][1]):
                    return None  # only single primitive children
                nxt.append(((*ops, _where_filter(kids[0][0], step.literal)), ty))
        alts = nxt
    return [LinearPath(ops, ty) for ops, ty in alts]


def _is_primitive(t: str) -> bool:
    return t in PRIMITIVES or t.startswith("System.")


def is_resource_type(t: str) -> bool:
    return t != "Resource" and is_type(t, "Resource")


def walk(resource: dict, ops: tuple[Op, ...]) -> list[Any]:
    return walk_from([resource], ops)


def walk_from(cur: list[Any], ops: tuple[Op, ...]) -> list[Any]:
    """Apply ops to the current values: a str op navigates into that key of every dict value
    (flattening lists, dropping nulls), a callable op filters."""
    for op in ops:
        if type(op) is str:
            nxt: list[Any] = []
            for c in cur:
                if type(c) is dict:
                    v = c.get(op)
                    if v is None:
                        continue
                    if type(v) is list:
                        nxt.extend(x for x in v if x is not None)
                    else:
                        nxt.append(v)
            cur = nxt
        else:
            cur = [c for c in cur if op(c)]  # type: ignore[operator]
        if not cur:
            break
    return cur


def compile_boolean_exists(resource_type: str, part: str) -> Callable[[dict], list[bool]] | None:
    """`X.exists() and X != false` (Patient.deceased) → a function yielding one boolean, with
    fhirpathpy's semantics: empty → false; [false] → false; anything else (true, a dateTime) →
    true."""
    m = _DECEASED_RE.match(part.strip())
    if m is None:
        return None
    inner = compile_linear(resource_type, m.group(1))
    if inner is None:
        return None
    paths = [lp.ops for lp in inner]

    def evaluate(resource: dict) -> list[bool]:
        vals = [v for ops in paths for v in walk(resource, ops)]
        return [any(v is not False for v in vals)]

    return evaluate
