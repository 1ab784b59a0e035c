"""Value checks the walker applies to one element: fixed/pattern, bindings, references, slices."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from gateway.validation.elements import MISSING, Discriminator, ElementNode
from gateway.validation.terminology import Terminology

_REF_RE = re.compile(
    r"^(?:.*/)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


# ---- fixed and pattern ----
def _numbers_equal(a: Any, b: Any) -> bool:
    return (
        isinstance(a, int | float | Decimal)
        and isinstance(b, int | float | Decimal)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def equals_fixed(value: Any, fixed: Any) -> bool:
    if isinstance(fixed, dict):
        return (
            isinstance(value, dict)
            and value.keys() == fixed.keys()
            and all(equals_fixed(value[k], fixed[k]) for k in fixed)
        )
    if isinstance(fixed, list):
        return (
            isinstance(value, list)
            and len(value) == len(fixed)
            and all(equals_fixed(v, f) for v, f in zip(value, fixed, strict=True))
        )
    return value == fixed and type(value) is type(fixed) or _numbers_equal(value, fixed)


def matches_pattern(value: Any, pattern: Any) -> bool:
    """`value` has at least everything `pattern` has (array items matched in any order)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches_pattern(value[k], p) for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(v, p) for v in items) for p in pattern)
    return value == pattern or _numbers_equal(value, pattern)


# ---- references ----
def reference_type(ref: str, env: dict[str, Any], is_type: Callable[[str], bool]) -> str | None:
    """The resource type a literal reference points to, when it can be told."""
    if ref.startswith("#"):
        for c in env["rootResource"].get("contained", []) if ref != "#" else []:
            if isinstance(c, dict) and c.get("id") == ref[1:]:
                return c.get("resourceType")
        return env["rootResource"].get("resourceType") if ref == "#" else None
    known = env.get("fullUrls", {}).get(ref)
    if known:
        return known
    m = _REF_RE.match(ref.split("?", 1)[0])
    if m and is_type(m.group(1)):
        return m.group(1)
    return None


# ---- terminology ----
def codings_of(type_code: str, value: Any) -> list[tuple[str | None, str]] | None:
    """(system, code) pairs a coded value carries; None when the type is not coded."""
    if type_code in ("code", "string", "uri") and isinstance(value, str):
        return [(None, value)]
    if type_code == "Coding" and isinstance(value, dict):
        return [(value.get("system"), value["code"])] if "code" in value else []
    if type_code == "CodeableConcept" and isinstance(value, dict):
        return [
            (c.get("system"), c["code"])
            for c in value.get("coding", [])
            if isinstance(c, dict) and "code" in c
        ]
    return None


def binding_problem(
    terminology: Terminology, strength: str, vs_url: str, type_code: str, value: Any
) -> tuple[str, dict[str, Any]] | None:
    """None when the value fits the binding (or the value set cannot be expanded locally)."""
    if strength not in ("required", "extensible") or type_code == "Quantity":
        return None
    pairs = codings_of(type_code, value)
    if pairs is None:
        return None
    expansion = terminology.expand(vs_url)
    if expansion is None or not expansion.complete:
        return None
    if not pairs:
        if strength == "required" and type_code == "CodeableConcept":
            return "VAL-1042", {"valueset": vs_url}
        return None
    if any(expansion.contains(s if type_code != "code" else None, c) for s, c in pairs):
        return None
    shown = ", ".join(f"{s}#{c}" if s else c for s, c in pairs)
    return ("VAL-1040" if strength == "required" else "VAL-1041"), {
        "code": shown,
        "valueset": vs_url,
    }


# ---- slicing ----
def _walk_json(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _walk_json(item, path)
        return
    if isinstance(value, dict) and path[0] in value:
        yield from _walk_json(value[path[0]], path[1:])


def _expected(slice_node: ElementNode, disc: Discriminator) -> tuple[str, Any] | None:
    node: ElementNode | None = slice_node
    for step in disc.path:
        if node is None:
            return None
        if step == "url" and not node.children and node.types and node.types[0].profiles:
            return "fixed", node.types[0].profiles[0]
        node = node.children.get(step)
    if node is None:
        return None
    if node.fixed is not MISSING:
        return "fixed", node.fixed
    if node.pattern is not MISSING:
        return "pattern", node.pattern
    if node.binding and node.binding[0] == "required":
        return "binding", node.binding[1]
    return None


def slice_matcher(
    slice_node: ElementNode, discriminators: tuple[Discriminator, ...], terminology: Terminology
) -> Callable[[Any], bool]:
    """A predicate telling whether an instance item belongs to the slice."""
    tests: list[Callable[[Any], bool]] = []
    for disc in discriminators:
        if disc.kind in ("value", "pattern"):
            expected = _expected(slice_node, disc)
            if expected is None:
                return lambda item: False
            tests.append(_value_test(disc.path, *expected, terminology))
        elif disc.kind == "exists":
            tests.append(_exists_test(disc.path, slice_node.min > 0))
        elif disc.kind == "type":
            tests.append(_type_test({t.code for t in slice_node.types}))
        else:
            return lambda item: False
    return lambda item: all(t(item) for t in tests)


def _exists_test(path: tuple[str, ...], must: bool) -> Callable[[Any], bool]:
    return lambda item: any(True for _ in _walk_json(item, path)) == must


def _type_test(codes: set[str]) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, dict) and item.get("resourceType") in codes


def _value_test(
    path: tuple[str, ...], how: str, expected: Any, terminology: Terminology
) -> Callable[[Any], bool]:
    if how == "fixed":
        return lambda item: any(equals_fixed(v, expected) for v in _walk_json(item, path))
    if how == "pattern":
        return lambda item: any(matches_pattern(v, expected) for v in _walk_json(item, path))

    def in_value_set(item: Any) -> bool:
        expansion = terminology.expand(expected)
        if expansion is None:
            return False
        for v in _walk_json(item, path):
            for code_type in ("CodeableConcept", "Coding", "code"):
                pairs = codings_of(code_type, v) or []
                system_free = code_type == "code"
                if any(expansion.contains(None if system_free else s, c) for s, c in pairs):
                    return True
        return False

    return in_value_set
