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
    "decimal": (int, float),
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


def check_json_types(resource: dict[str, Any], model: Any, root: str) -> list[Issue]:
    issues: list[Issue] = []
    _walk(resource, model, root, issues)
    return issues


def _walk(node: dict[str, Any], model: Any, path: str, issues: list[Issue]) -> None:
    kinds = field_kinds(model)
    for key, value in node.items():
        spec = kinds.get(key)
        if spec is None:
            continue  # unknown elements are the model's to report
        kind, child = spec
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, kind, child, f"{path}.{key}[{i}]", issues, in_list=True)
        else:
            _check(value, kind, child, f"{path}.{key}", issues, in_list=False)


def _check(
    value: Any, kind: str, child: Any, path: str, issues: list[Issue], in_list: bool
) -> None:
    if value is None:
        return  # null stands in for an absent primitive beside its _element (json.html)
    if kind in _JSON_TYPE:
        ok = isinstance(value, _JSON_TYPE[kind]) and (
            kind == "boolean" or not isinstance(value, bool)
        )
        if not ok:
            want = {
                "boolean": "a JSON boolean",
                "integer": "a JSON integer",
                "decimal": "a JSON number",
                "string": "a JSON string",
            }[kind]
            issues.append(
                Issue(
                    "value",
                    f"{path}: must be {want}, not {type(value).__name__} {value!r:.40}",
                    "GW-1102",
                    expression=(path,),
                )
            )
        elif kind == "string" and _CONTROL.search(value):
            issues.append(
                Issue(
                    "value",
                    f"{path}: control characters other than tab, CR and LF are not allowed",
                    "GW-1104",
                    expression=(path,),
                )
            )
        elif kind == "integer" and isinstance(value, float) and not value.is_integer():
            issues.append(
                Issue("value", f"{path}: must be an integer", "GW-1102", expression=(path,))
            )
        return
    if not isinstance(value, dict):
        return  # the model reports structure errors
    if kind == "resource":
        from gateway.fhir.parse import model_class

        rtype = value.get("resourceType")
        model = model_class(rtype) if isinstance(rtype, str) else None
        if model is None:  # json.html: every resource, contained ones too, names its type
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
        _walk(value, model, path, issues)
        return
    _walk(value, child, path, issues)
