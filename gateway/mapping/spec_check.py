"""A spec's templates checked against its declarations: every field a template names is
declared (and every declared field used), every table, resource and directive known, each
directive where it makes sense. Raises SpecError naming the file and the place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.mapping.spec import (
    DIRECTIVES,
    FLAGS,
    ITEM,
    MODIFIERS,
    SOURCES,
    FieldSpec,
    Spec,
    SpecError,
    placeholders,
)


def check(spec: Spec, where: str) -> None:
    """Every name a template uses is declared; every declared field is used somewhere."""
    used: set[str] = set()
    names = {r.name for r in spec.resources}
    for res in spec.resources:
        here = f"{where}: resource {res.name}"
        if res.key is not None:
            _format_fields(spec, res.key, spec.fields, here + " key", used)
        if res.when is not None:
            _need_field(spec.fields, res.when, here + " when", used)
        _walk(spec, res.template, spec.fields, here, used, names, res.merge is not None)
    for field in spec.fields.values():
        if field.required_when and field.required_when[0] not in spec.fields:
            raise SpecError(f"{where}: field {field.name}: required_when names no field")
        if field.name not in used:
            raise SpecError(f"{where}: field {field.name} is declared but no template uses it")
    if spec.key_field is not None and spec.key_field not in spec.fields:
        raise SpecError(f"{where}: key_field '{spec.key_field}' is not a field")


def _need_field(scope: Mapping[str, FieldSpec], name: str, where: str, used: set[str]) -> FieldSpec:
    field = scope.get(name)
    if field is None:
        raise SpecError(f"{where}: '{name}' is not a declared field")
    used.add(name)
    return field


def _format_fields(
    spec: Spec, text: str, scope: Mapping[str, FieldSpec], where: str, used: set[str]
) -> None:
    found = False
    for name, table in placeholders(text):
        found = True
        field = _need_field(scope, name, where, used)
        if field.many or field.items:
            raise SpecError(f"{where}: '{name}' holds several values: use $each")
        if table is not None and table not in spec.tables:
            raise SpecError(f"{where}: unknown table '{table}'")
    if not found:
        raise SpecError(f"{where}: '{text}' names no {{field}}")


def _walk(
    spec: Spec,
    node: Any,
    scope: Mapping[str, FieldSpec],
    where: str,
    used: set[str],
    resources: set[str],
    weak_allowed: bool,
    item: FieldSpec | None = None,
) -> None:
    if isinstance(node, list):
        for i, child in enumerate(node):
            _walk(spec, child, scope, f"{where}[{i}]", used, resources, weak_allowed, item)
        return
    if not isinstance(node, Mapping):
        return
    directives = {k for k in node if isinstance(k, str) and k.startswith("$")}
    unknown = directives - DIRECTIVES
    if unknown:
        raise SpecError(f"{where}: unknown directives {sorted(unknown)}")
    if "$weak" in directives and not weak_allowed:
        raise SpecError(f"{where}: $weak only applies to a resource with `merge`")
    if "$when" in directives:
        _need_field(scope, str(node["$when"]), where + ".$when", used)
    if "$each" in directives:
        _walk_each(spec, node, scope, where, used, resources, weak_allowed)
        return
    sources = [k for k in SOURCES if k in node]
    if len(sources) > 1:
        raise SpecError(f"{where}: one value source per object, not {sources}")
    if sources:
        _check_leaf(spec, node, sources[0], scope, where, used, resources, item)
        rest = set(node) - DIRECTIVES
        if rest:
            raise SpecError(f"{where}: a value object has only directives, not {sorted(rest)}")
        return
    if directives - set(FLAGS):
        raise SpecError(f"{where}: {sorted(directives)} need a value source ({SOURCES})")
    for key, child in node.items():
        if key in FLAGS:
            continue
        _walk(spec, child, scope, f"{where}.{key}", used, resources, weak_allowed, item)


def _walk_each(
    spec: Spec,
    node: Mapping[str, Any],
    scope: Mapping[str, FieldSpec],
    where: str,
    used: set[str],
    resources: set[str],
    weak_allowed: bool,
) -> None:
    if set(node) != {"$each", "$item"}:
        raise SpecError(f"{where}: $each takes exactly $item beside it")
    field = _need_field(scope, str(node["$each"]), where, used)
    if not (field.many or field.items):
        raise SpecError(f"{where}: $each over '{field.name}', which holds one value")
    inner: dict[str, FieldSpec] = dict(scope)
    for sub in field.items:
        inner[sub.name] = sub
    _walk(spec, node["$item"], inner, f"{where}.$item", used, resources, weak_allowed, field)
    for sub in field.items:
        used.add(sub.name)


def _check_leaf(
    spec: Spec,
    node: Mapping[str, Any],
    source: str,
    scope: Mapping[str, FieldSpec],
    where: str,
    used: set[str],
    resources: set[str],
    item: FieldSpec | None,
) -> None:
    value = node[source]
    if source == "$from":
        names = value if isinstance(value, list) else [value]
        for name in names:
            if name == ITEM:
                if item is None or not item.many:
                    raise SpecError(f"{where}: `$from: .` only inside $each over a list")
                continue
            field = _need_field(scope, str(name), where, used)
            if field.many or field.items:
                raise SpecError(f"{where}: '{name}' holds several values: use $each")
    elif source in ("$format", "$query"):
        if not isinstance(value, str):
            raise SpecError(f"{where}: {source} is a format string")
        _format_fields(spec, value, scope, where, used)
    elif value not in resources:
        raise SpecError(f"{where}: $ref names no resource of this spec ('{value}')")
    for modifier in MODIFIERS:
        table = node.get(modifier)
        if table is None:
            continue
        if table not in spec.tables:
            raise SpecError(f"{where}: unknown table '{table}'")
        if modifier == "$coding" and spec.tables[table].system is None:
            raise SpecError(f"{where}: table '{table}' has no system for a Coding")
