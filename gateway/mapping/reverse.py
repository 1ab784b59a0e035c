"""The reverse of a spec: stored resources → the native record, for platforms that still
consume the regional systems' JSON.

The templates are read backwards, one engine for every spec: a `$from` leaf gives its field
the value found at its place (a code back through its table to the table's first spelling, a
yes/no as 是/否); a `$format` leaf is matched as a pattern and gives each placeholder its part;
`$query` and `$ref` leaves (resolved to ids when stored) give nothing, which is why templates
keep a reference's business identifier beside it. Array items are matched by their fixed
parts (an extension by its url), the most specific template item first, so each element
feeds one item; `$each` items take every element left that matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.mapping.render import Renderer, Scope
from gateway.mapping.spec import ITEM, SOURCES, FieldSpec, Spec, placeholders
from gateway.mapping.values import native

Assigned = dict[str, Any]


def native_record(spec: Spec, resources: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The native record of `resources` (resource name in the spec → stored resource)."""
    reader = _Reader(spec)
    out: Assigned = {}
    for res in spec.resources:
        resource = resources.get(res.name)
        if resource is not None:
            reader.match(res.template, resource, out, spec.fields)
    record = reader.finish(out)
    return {name: record[name] for name in spec.fields if name in record}


class _Reader:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.alternatives: list[tuple[tuple[str, ...], Any]] = []

    def match(self, node: Any, actual: Any, out: Assigned, scope: Mapping[str, FieldSpec]) -> bool:
        if isinstance(node, list):
            return self._list(node, actual, out, scope)
        if not isinstance(node, Mapping):
            return node == actual
        if any(k in node for k in SOURCES):
            return self._leaf(node, actual, out, scope)
        if not isinstance(actual, Mapping):
            return False
        trial: Assigned = {}
        for key, child in node.items():
            if key in ("$weak", "$when"):
                continue
            if key not in actual:
                if _fixed_count(child) and not _dynamic(child):
                    return False  # a fixed part missing: not this element
                continue
            if not self.match(child, actual[key], trial, scope):
                return False
        _combine(out, trial)
        return True

    def _list(
        self, node: list[Any], actual: Any, out: Assigned, scope: Mapping[str, FieldSpec]
    ) -> bool:
        elements = actual if isinstance(actual, list) else [actual]
        used: set[int] = set()
        order = sorted(range(len(node)), key=lambda i: -_fixed_count(node[i]))
        for i in order:
            child = node[i]
            if isinstance(child, Mapping) and "$each" in child:
                continue
            for j, element in enumerate(elements):
                if j not in used and self.match(child, element, out, scope):
                    used.add(j)
                    break
        for child in node:
            if isinstance(child, Mapping) and "$each" in child:
                self._each(child, elements, used, out, scope)
        return True

    def _each(
        self,
        node: Mapping[str, Any],
        elements: list[Any],
        used: set[int],
        out: Assigned,
        scope: Mapping[str, FieldSpec],
    ) -> None:
        name = str(node["$each"])
        field = scope[name]
        inner = {**scope, **{f.name: f for f in field.items}}
        for j, element in enumerate(elements):
            if j in used:
                continue
            item: Assigned = {}
            if not self.match(node["$item"], element, item, inner):
                continue
            used.add(j)
            if field.items:
                sub = {f.name: item[f.name] for f in field.items if f.name in item}
                out.setdefault(name, []).append(sub)
                for k, v in item.items():  # record fields met inside the item
                    if k not in sub:
                        out.setdefault(k, v)
            elif ITEM in item:
                out.setdefault(name, []).append(item[ITEM])

    def _leaf(
        self, node: Mapping[str, Any], actual: Any, out: Assigned, scope: Mapping[str, FieldSpec]
    ) -> bool:
        if "$query" in node or "$ref" in node:
            return True  # resolved into an id when stored: nothing to read back
        if "$format" in node:
            return self._format(str(node["$format"]), actual, out)
        value = self._uncode(node, actual)
        if value is None:
            return False
        names = node["$from"] if isinstance(node["$from"], list) else [node["$from"]]
        if len(names) > 1:
            self.alternatives.append((tuple(names), value))
            return True
        name = str(names[0])
        kind = scope[name].kind if name in scope else "string"
        out.setdefault(name, native(kind, value))
        return True

    def _uncode(self, node: Mapping[str, Any], actual: Any) -> Any:
        if "$code" in node:
            return self.spec.tables[str(node["$code"])].native(str(actual))
        if "$coding" in node:
            table = self.spec.tables[str(node["$coding"])]
            if not isinstance(actual, Mapping) or actual.get("system") != table.system:
                return None
            return table.native(str(actual.get("code")))
        return actual if isinstance(actual, str | int | float | bool) else None

    def _format(self, text: str, actual: Any, out: Assigned) -> bool:
        if not isinstance(actual, str):
            return False
        parts = list(placeholders(text))
        pattern = re.escape(text)
        for name, table in parts:
            token = re.escape("{" + name + (":" + table if table else "") + "}")
            pattern = pattern.replace(token, "(.+?)", 1)
        m = re.fullmatch(pattern, actual)
        if m is None:
            return False
        found: Assigned = {}
        for (name, table), value in zip(parts, m.groups(), strict=True):
            if table is not None:
                value = self.spec.tables[table].native(value)
                if value is None:
                    return False
            found[name] = value
        _combine(out, found)
        return True

    def finish(self, out: Assigned) -> Assigned:
        """A `$from: [a, b]` value (a when given, else b) goes back to `a` unless it is what
        `b` holds anyway: the resident signing for themself names no representative."""
        for names, value in self.alternatives:
            if any(out.get(n) == value for n in names[1:]):
                continue
            out.setdefault(names[0], value)
        return out


def _combine(out: Assigned, found: Assigned) -> None:
    for key, value in found.items():
        if isinstance(value, list) and isinstance(out.get(key), list):
            out[key] += value
        else:
            out.setdefault(key, value)


def _fixed_count(node: Any) -> int:
    """Fixed scalars in a template part: how specifically it picks an element."""
    if isinstance(node, list):
        return sum(_fixed_count(n) for n in node)
    if isinstance(node, Mapping):
        if any(k in node for k in SOURCES) or "$each" in node:
            return 0
        return sum(_fixed_count(v) for k, v in node.items() if k not in ("$weak", "$when"))
    return 1


def _dynamic(node: Any) -> bool:
    if isinstance(node, list):
        return any(_dynamic(n) for n in node)
    if isinstance(node, Mapping):
        if any(k in node for k in SOURCES) or "$each" in node:
            return True
        return any(_dynamic(v) for k, v in node.items() if k not in ("$weak", "$when"))
    return False


def related_queries(spec: Spec, record: Mapping[str, Any], known: str) -> dict[str, str]:
    """Where to find the spec's other resources of a record read back from `known` (resource
    name): each one's business-key search, `Type?identifier=…`, filled from the record."""
    renderer = Renderer(spec, {}, [])
    out: dict[str, str] = {}
    for res in spec.resources:
        if res.name == known or res.key is None:
            continue
        filled = renderer.fill(res.key, Scope(dict(record)), url=True)
        if filled is not None:
            out[res.name] = f"{res.type}?{filled[0]}"
    return out
