"""A template filled from one record's values: FHIR JSON, and where each value came from.

An object or list whose values all come from the record, and none of which has a value, is
left out (an extension for an absent 解约原因 disappears with it; fixed parts never keep an
object alive alone). Each filled value records its FHIR location relative to the resource
(`extension[2].valueCoding`) and the source fields it came from, so that a problem the
validator or a rule later finds there is reported against the field the record called it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from gateway.mapping.record import UNKNOWN_CODE, Problem, Values
from gateway.mapping.spec import ITEM, Spec, placeholders
from gateway.mapping.values import ValueProblem
from gateway.vocab.json_io import json_copy

Locations = list[tuple[str, tuple[str, ...]]]  # (FHIR path in the resource, source fields)


class _Empty:
    """A value the record does not have."""


EMPTY = _Empty()


@dataclass
class Scope:
    """Fields visible at a point of the template: the record's, and inside $each the item's
    (named `成员[2].工号` in reports)."""

    values: Values
    labels: dict[str, str] = field(default_factory=dict)
    item: Any = EMPTY
    item_label: str = ""
    parent: Scope | None = None

    def get(self, name: str) -> tuple[Any, str]:
        if name == ITEM:
            return self.item, self.item_label
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name], scope.labels.get(name, name)
            scope = scope.parent
        return EMPTY, name


@dataclass
class Rendered:
    value: Any  # JSON, or EMPTY
    dynamic: bool  # some part depends on the record
    filled: bool  # some part that depends on the record has a value
    locations: Locations


class Renderer:
    def __init__(self, spec: Spec, full_urls: Mapping[str, str], problems: list[Problem]):
        self.spec = spec
        self.full_urls = full_urls
        self.problems = problems

    def render(self, node: Any, scope: Scope) -> Rendered:
        kind = _kind(node, self.spec.node_kinds)
        if kind == _FIXED:  # a copy: what is rendered may be changed in place later
            return Rendered(json_copy(node), False, False, [])
        if kind == _LIST:
            return self._list(node, scope)
        if kind == _EACH:
            return self._list([node], scope)
        if kind == _LEAF:
            return self._leaf(node, scope)
        return self._object(node, scope)

    def _object(self, node: Mapping[str, Any], scope: Scope) -> Rendered:
        if "$when" in node and scope.get(str(node["$when"]))[0] is EMPTY:
            return Rendered(EMPTY, True, False, [])
        out: dict[str, Any] = {}
        locations: Locations = []
        dynamic = filled = False
        for key, child in node.items():
            if key == "$when":
                continue
            if key == "$weak":
                out[key] = True  # kept for the merge, which strips it
                continue
            r = self.render(child, scope)
            dynamic, filled = dynamic or r.dynamic, filled or r.filled
            if r.value is EMPTY:
                continue
            out[key] = r.value
            locations += [(_join(key, path), fields) for path, fields in r.locations]
        if not set(out) - {"$weak"} or (dynamic and not filled):
            return Rendered(EMPTY, dynamic, False, [])
        return Rendered(out, dynamic, filled, locations)

    def _list(self, node: list[Any], scope: Scope) -> Rendered:
        items: list[Rendered] = []
        dynamic = False
        for child in node:
            if isinstance(child, Mapping) and "$each" in child:
                dynamic = True
                items += self._each(child, scope)
            else:
                r = self.render(child, scope)
                dynamic = dynamic or r.dynamic
                items.append(r)
        kept = [r for r in items if r.value is not EMPTY]
        if not kept:
            return Rendered(EMPTY, dynamic, False, [])
        locations: Locations = []
        for i, r in enumerate(kept):
            locations += [(f"[{i}]" + _sep(path), fields) for path, fields in r.locations]
        filled = any(r.filled for r in kept)
        return Rendered([r.value for r in kept], dynamic, filled, locations)

    def _each(self, node: Mapping[str, Any], scope: Scope) -> list[Rendered]:
        name = str(node["$each"])
        values, label = scope.get(name)
        if values is EMPTY:
            return []
        out = []
        sub_fields = self.spec.fields.get(name)
        for i, value in enumerate(values, 1):
            if isinstance(value, dict) and (sub_fields is None or sub_fields.items):
                labels = {k: f"{label}[{i}].{k}" for k in value}
                inner = Scope(value, labels, parent=scope)
            else:
                inner = Scope({}, item=value, item_label=label, parent=scope)
            out.append(self.render(node["$item"], inner))
        return out

    def _leaf(self, node: Mapping[str, Any], scope: Scope) -> Rendered:
        if "$ref" in node:
            url = self.full_urls.get(str(node["$ref"]))
            return Rendered(url if url is not None else EMPTY, True, url is not None, [])
        if "$from" in node:
            names = node["$from"] if isinstance(node["$from"], list) else [node["$from"]]
            value: Any = EMPTY
            label = ""
            for name in names:
                value, label = scope.get(str(name))
                if value is not EMPTY:
                    break
            if value is EMPTY:
                return Rendered(EMPTY, True, False, [])
            labels: tuple[str, ...] = (label,)
        else:
            text = str(node.get("$format", node.get("$query")))
            filled = self.fill(text, scope, url="$query" in node)
            if filled is None:
                return Rendered(EMPTY, True, False, [])
            value, labels = filled
        value = self._coded(node, value, labels[0])
        if value is EMPTY:
            return Rendered(EMPTY, True, False, [])
        return Rendered(value, True, True, [("", labels)])

    def fill(self, text: str, scope: Scope, url: bool) -> tuple[str, tuple[str, ...]] | None:
        """A format string filled from the scope (URL-quoted values for a search), with the
        fields it used; None when one of them has no value."""
        labels: list[str] = []
        out = text
        for name, table in placeholders(text):
            value, label = scope.get(name)
            if value is EMPTY:
                return None
            labels.append(label)
            if table is not None:
                value = self._code(table, str(value), label)
                if value is EMPTY:
                    return None
            text_value = str(value)
            if url:  # a search value: nothing in it may read as URL syntax
                text_value = quote(text_value, safe="|:/")
            token = "{" + name + (":" + table if table else "") + "}"
            out = out.replace(token, text_value, 1)
        return out, tuple(labels)

    def _coded(self, node: Mapping[str, Any], value: Any, label: str) -> Any:
        if "$code" in node:
            return self._code(str(node["$code"]), str(value), label)
        if "$coding" in node:
            table = self.spec.tables[str(node["$coding"])]
            code = self._code(table.name, str(value), label)
            return EMPTY if code is EMPTY else {"system": table.system, "code": code}
        return value

    def _code(self, table: str, value: str, label: str) -> Any:
        try:
            code = self.spec.tables[table].code(value)
            return EMPTY if code is None else code
        except ValueProblem as exc:
            problem = Problem(label, str(exc), UNKNOWN_CODE)
            if problem not in self.problems:
                self.problems.append(problem)
            return EMPTY


# What a template node is, found once per node and kept with its spec: every record of a
# mapping renders the same nodes, and most of a template is fixed text.
_FIXED, _LIST, _EACH, _LEAF, _OBJECT = range(5)
_LEAF_KEYS = ("$from", "$format", "$query", "$ref")


def _kind(node: Any, known: dict[int, tuple[Any, int]]) -> int:
    found = known.get(id(node))
    if found is not None and found[0] is node:
        return found[1]
    if not isinstance(node, list | Mapping):
        return _FIXED  # a scalar: no need to remember it
    if _fixed(node):
        kind = _FIXED
    elif isinstance(node, list):
        kind = _LIST
    elif "$each" in node:
        kind = _EACH
    elif any(k in node for k in _LEAF_KEYS):
        kind = _LEAF
    else:
        kind = _OBJECT
    known[id(node)] = (node, kind)  # the node itself kept: its id is never reused
    return kind


def _fixed(node: Any) -> bool:
    """No directive anywhere in it, and nothing empty (an empty object or list is left out):
    the node renders as itself."""
    if isinstance(node, list):
        return bool(node) and all(_fixed(v) for v in node)
    if isinstance(node, Mapping):
        return (
            bool(node)
            and not any(str(k).startswith("$") for k in node)
            and all(_fixed(v) for v in node.values())
        )
    return True


def _join(key: str, path: str) -> str:
    return key + _sep(path)


def _sep(path: str) -> str:
    if not path or path.startswith("["):
        return path
    return "." + path
