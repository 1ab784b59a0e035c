"""JSON types of primitive values, which the R4B models coerce instead of checking.

pydantic's lax mode turns `"active": "yes"` into True and `"valueInteger": "5"` into 5; FHIR
JSON requires a JSON boolean and a JSON number (R4 json.html §2.6.2). This walker reads each
model's field annotations once and checks that every primitive has its JSON type, and that
every nested resource (contained, Bundle.entry.resource, Parameters) names a known type.
"""

from __future__ import annotations

import datetime
import decimal
import re
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from gateway.fhir.outcomes import Issue

# datatypes.html: strings SHALL NOT contain characters below 32 other than tab, CR, LF.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

# kind: boolean | integer | decimal | string | complex | resource
Kinds = dict[str, tuple[str, Any]]

_JSON_TYPE = {
    "boolean": (bool,),
    "integer": (int,),
    "decimal": (int, float, Decimal),
    "string": (str,),
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        elif origin in (list, typing.List):  # noqa: UP006
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _kind(annotation: Any) -> tuple[str, Any] | None:
    t = _unwrap(annotation)
    if t is bool:
        return ("boolean", None)
    if t is int:
        return ("integer", None)
    if t in (float, decimal.Decimal):
        return ("decimal", None)
    if t in (str, datetime.date, datetime.datetime, datetime.time):
        return ("string", None)
    get_model = getattr(t, "get_model_klass", None)
    if get_model is not None:
        model = get_model()
        if model.__name__ in ("Resource", "DomainResource"):
            return ("resource", None)
        return ("complex", model)
    if isinstance(t, type) and issubclass(t, str):
        return ("string", None)
    return None


@cache
def field_kinds(model: Any) -> Kinds:
    kinds: Kinds = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        k = _kind(field.annotation)
        if k is not None:
            kinds[key] = k
    return kinds


_KIND_WANT = {
    "boolean": "a JSON boolean",
    "integer": "a JSON integer",
    "decimal": "a JSON number",
    "string": "a JSON string",
}


def check_json_types(resource: dict[str, Any], model: Any, root: str) -> list[Issue]:
    """Issues for every primitive without its JSON type, every string with control characters,
    every null outside an array and every nested resource without a known resourceType. One
    iterative walk; a value's FHIRPath is spelled out only when it has an issue (paths are
    (parent, step) chains)."""
    issues: list[Issue] = []
    stack: list[tuple[dict[str, Any], Any, Any]] = [(resource, model, root)]
    while stack:
        node, node_model, where = stack.pop()
        kinds = field_kinds(node_model)
        for key, value in node.items():
            spec = kinds.get(key)
            if spec is None:
                continue  # unknown elements are the model's to report
            kind, child = spec
            if type(value) is list:
                for i, item in enumerate(value):
                    if item is not None:
                        _check(item, kind, child, (where, key, i), issues, stack)
                ext = node.get("_" + key) if key[0] != "_" else None
                if type(ext) is list and len(ext) != len(value):
                    # json.html: the two arrays are aligned, null padding the shorter side
                    path = _path((where, key, None))
                    issues.append(
                        Issue(
                            "structure",
                            f"{path}: '{key}' and '_{key}' must have the same number of items",
                            "GW-1107",
                            expression=(path,),
                        )
                    )
            elif value is not None:
                _check(value, kind, child, (where, key, None), issues, stack)
            else:  # json.html: null only pads arrays to align them with their _element
                path = _path((where, key, None))
                issues.append(
                    Issue(
                        "structure",
                        f"{path}: null is not a value (leave the property out)",
                        "GW-1106",
                        expression=(path,),
                    )
                )
    return issues


def _path(where: Any) -> str:
    parts: list[str] = []
    while type(where) is tuple:
        where, key, index = where
        key = key[1:] if key[:1] == "_" else key  # `_given` holds the element given's parts
        parts.append(f".{key}" if index is None else f".{key}[{index}]")
    return where + "".join(reversed(parts))


def _check(
    value: Any,
    kind: str,
    child: Any,
    where: tuple[Any, str, int | None],
    issues: list[Issue],
    stack: list[tuple[dict[str, Any], Any, Any]],
) -> None:
    t = type(value)
    if kind == "complex":
        if t is dict:
            stack.append((value, child, where))
        return  # not an object: the model reports structure errors
    if kind == "string":
        if t is str:
            if _CONTROL.search(value):
                path = _path(where)
                issues.append(
                    Issue(
                        "value",
                        f"{path}: control characters other than tab, CR and LF are not allowed",
                        "GW-1104",
                        expression=(path,),
                    )
                )
            return
    elif kind == "boolean":
        if t is bool:
            return
    elif kind == "integer":
        if t is int:
            return
    elif kind == "decimal":
        if t is int or t is float or isinstance(value, Decimal):
            return
    elif kind == "resource":
        if t is dict:
            _nested_resource(value, where, issues, stack)
        return
    path = _path(where)
    issues.append(
        Issue(
            "value",
            f"{path}: must be {_KIND_WANT[kind]}, not {t.__name__} {value!r:.40}",
            "GW-1102",
            expression=(path,),
        )
    )


def _nested_resource(
    value: dict[str, Any],
    where: tuple[Any, str, int | None],
    issues: list[Issue],
    stack: list[tuple[dict[str, Any], Any, Any]],
) -> None:
    from gateway.fhir.parse import model_class

    rtype = value.get("resourceType")
    model = model_class(rtype) if isinstance(rtype, str) else None
    if model is None:  # json.html: every resource, contained ones too, names its type
        path = _path(where)
        what = f"unknown resourceType {rtype!r:.40}" if rtype is not None else "no resourceType"
        issues.append(
            Issue(
                "structure",
                f"{path}: a resource with {what}",
                "GW-1105",
                expression=(f"{path}.resourceType",),
            )
        )
        return
    stack.append((value, model, where))
