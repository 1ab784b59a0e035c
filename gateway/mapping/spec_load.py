"""A spec read from its YAML: the field declarations and resource templates parsed into the
model (gateway.mapping.spec), then checked (gateway.mapping.spec_check) before any record."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.mapping.spec import FieldSpec, MergeSpec, ResourceSpec, Spec, SpecError
from gateway.mapping.spec_check import check
from gateway.mapping.tables import CodeTable, TableError, load_tables
from gateway.mapping.values import KINDS
from gateway.vocab.definitions import r4_resource_types

_DE = re.compile(r"DE\d{2}\.\d{2}\.\d{3}\.\d{2}")


def load_spec(raw: Any, where: str, shared_tables: Mapping[str, CodeTable]) -> Spec:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: a spec is a mapping (name, fields, resources)")
    name = _text(raw, "name", where)
    try:
        tables = {**shared_tables, **load_tables(raw.get("tables") or {}, where)}
    except TableError as exc:
        raise SpecError(str(exc)) from None
    fields = _fields(raw.get("fields"), where, tables)
    resources = _resources(raw.get("resources"), where)
    spec = Spec(
        name,
        str(raw.get("title") or name),
        fields,
        resources,
        tables,
        str(raw.get("zone") or "+08:00"),
        raw.get("key_field"),
    )
    check(spec, where)
    return spec


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: `{key}` is required (text)")
    return value


def _fields(raw: Any, where: str, tables: Mapping[str, CodeTable]) -> dict[str, FieldSpec]:
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"{where}: `fields` must map each source field to its declaration")
    out: dict[str, FieldSpec] = {}
    for name, body in raw.items():
        out[str(name)] = _field(str(name), body or {}, f"{where}: field {name}", tables)
    return out


def _field(name: str, body: Any, where: str, tables: Mapping[str, CodeTable]) -> FieldSpec:
    if not isinstance(body, Mapping):
        raise SpecError(f"{where}: a declaration is a mapping (de, as, required, …)")
    unknown = set(body) - {
        "de",
        "title",
        "as",
        "required",
        "required_when",
        "default",
        "aliases",
        "many",
        "items",
        "codes",
    }
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
    kind = body.get("as", "string")
    if kind not in KINDS:
        raise SpecError(f"{where}: `as` must be one of {', '.join(KINDS)}")
    de = body.get("de")
    if de is not None and not _DE.fullmatch(str(de)):
        raise SpecError(f"{where}: `de` must be a WS 363 identifier (DE02.01.039.00)")
    codes = body.get("codes")
    if codes is not None and codes not in tables:
        raise SpecError(f"{where}: unknown table '{codes}'")
    items_raw = body.get("items")
    items: tuple[FieldSpec, ...] = ()
    if items_raw is not None:
        if not isinstance(items_raw, Mapping) or not items_raw:
            raise SpecError(f"{where}: `items` maps each sub-field to its declaration")
        items = tuple(_field(str(n), b or {}, f"{where}.{n}", tables) for n, b in items_raw.items())
    when = body.get("required_when")
    required_when = None
    if when is not None:
        if not isinstance(when, Mapping) or len(when) != 1:
            raise SpecError(f"{where}: required_when is {{field: [values]}}")
        ((other, values),) = when.items()
        values = values if isinstance(values, list) else [values]
        required_when = (str(other), frozenset(str(v) for v in values))
    aliases = body.get("aliases") or []
    return FieldSpec(
        name,
        kind,
        str(de) if de else None,
        str(body.get("title") or ""),
        bool(body.get("required", False)),
        required_when,
        str(body["default"]) if body.get("default") is not None else None,
        tuple(str(a) for a in aliases),
        bool(body.get("many", False)),
        items,
        codes,
    )


def _resources(raw: Any, where: str) -> tuple[ResourceSpec, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"{where}: `resources` maps a name to each resource a record becomes")
    types = r4_resource_types()
    out = []
    for name, body in raw.items():
        here = f"{where}: resource {name}"
        if not isinstance(body, Mapping):
            raise SpecError(f"{here}: a mapping (type, key, template)")
        rtype = _text(body, "type", here)
        if rtype not in types:
            raise SpecError(f"{here}: '{rtype}' is not an R4 resource type")
        template = body.get("template")
        if not isinstance(template, Mapping):
            raise SpecError(f"{here}: `template` is the resource's JSON")
        merge = body.get("merge")
        merge_spec = None
        if merge is not None:
            if not isinstance(merge, Mapping) or not {"list", "key"} <= set(merge):
                raise SpecError(f"{here}: merge needs `list` and `key`")
            merge_spec = MergeSpec(str(merge["list"]), str(merge["key"]), merge.get("count"))
        out.append(
            ResourceSpec(
                str(name),
                rtype,
                body.get("key"),
                body.get("when"),
                {"resourceType": rtype, **template},
                merge_spec,
            )
        )
    return tuple(out)
