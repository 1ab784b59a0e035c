"""Bytes → JSON → structurally validated resource dict, with FHIRPath-located errors.

Validation uses the fhir.resources R4B models once, on write; the dict (not the model) is what
the store keeps, so the client's content is stored as written, never re-serialised.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.fhir import json_io, outcomes
from gateway.fhir.json_types import check_json_types
from gateway.fhir.outcomes import Issue
from gateway.fhir.r4b import get_fhir_model_class

_ISSUE_CODE_BY_PYDANTIC = {
    "missing": "required",
    "extra_forbidden": "structure",
}


@cache
def model_class(rtype: str) -> Any | None:
    """The R4B model class for a resource type name, or None when it is not a resource."""
    if not rtype or not rtype[0].isupper():
        return None
    try:
        cls = get_fhir_model_class(rtype)
    except (ValueError, KeyError, ImportError, AttributeError):
        return None
    # Data types (HumanName, …) are models too; only resources have a resource type.
    get_type = getattr(cls, "get_resource_type", None)
    return (
        cls if get_type is not None and get_type() == rtype and "meta" in cls.model_fields else None
    )


@cache
def served_types() -> tuple[str, ...]:
    """R4 resource types that the R4B models can validate: every type this gateway serves.
    (R4-only types that R4B replaced, such as MedicinalProduct, have no model and are not.)"""
    lines = (Path(__file__).parent / "data" / "r4-resource-types.txt").read_text().splitlines()
    names = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    return tuple(n for n in names if model_class(n))


@cache
def _served_set() -> frozenset[str]:
    return frozenset(served_types())


def is_resource_type(rtype: str) -> bool:
    return rtype in _served_set()


def parse_json(body: bytes | None) -> Any:
    if not body:
        raise outcomes.bad_request("The request body is empty", gw="GW-1014")
    try:
        doc = orjson.loads(body)  # strict syntax and UTF-8
    except orjson.JSONDecodeError as exc:
        raise outcomes.malformed_json(str(exc)) from None
    if type(doc) is dict or type(doc) is list:
        # Parsed again: repeated properties, and decimals as Decimal (precision kept).
        return _exact_unique(body)
    return doc


class _DuplicateKey(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


_DUP = "\ue001duplicates"  # marks an object with repeated keys (not a valid JSON name here)


def _marked(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        obj[_DUP] = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _exact_unique(body: bytes) -> Any:
    """The body with decimals as Decimal; a 400 when an object repeats a property (R4
    json.html: a property appears at most once; orjson keeps the last one silently). Only a
    rejected body pays for locating the object."""
    try:
        return json_io.loads_exact(body, object_pairs_hook=_unique)
    except _DuplicateKey:
        pass
    except RecursionError:  # orjson took it (≤ 1024 levels); Python's parser recurses less
        raise outcomes.bad_request("The body is nested too deeply", gw="GW-1103") from None
    root = json.loads(body, object_pairs_hook=_marked)
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if type(node) is dict:
            if _DUP in node:
                rtype = root.get("resourceType") if type(root) is dict else None
                where = fhirpath_of(rtype if isinstance(rtype, str) else "$", loc)
                keys = ", ".join(node[_DUP])
                raise outcomes.bad_request(
                    f"Malformed JSON: property '{keys}' appears more than once in {where}",
                    f"{where}.{node[_DUP][0]}",
                    "GW-1001",
                )
            stack.extend((v, (*loc, k)) for k, v in node.items())
        elif type(node) is list:
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))
    raise AssertionError("a repeated key the second parse did not find")


def fhirpath_of(root: str, loc: tuple[Any, ...], keep_last: bool = False) -> str:
    """('name', 0, 'given', 1) → 'Patient.name[0].given[1]'. A primitive's JSON extension
    key `_given` is the element `given` in FHIRPath (its `.extension` lives there); with
    keep_last the last name is kept as written (an unknown key)."""
    out = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("_") and len(part) > 1 and not (keep_last and i == len(loc) - 1):
            out += f".{part[1:]}"
        else:
            out += f".{part}"
    return out


_CHOICE_LIST = re.compile(r"from this list \[([^\]]*)\]")


def _choice_element(msg: str) -> str | None:
    """'… from this list ['deceasedBoolean', 'deceasedDateTime'], but got multiple!' →
    'deceased': the choice element two values were given for."""
    m = _CHOICE_LIST.search(msg)
    names = re.findall(r"'([A-Za-z]+)'", m.group(1)) if m else []
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    return prefix.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") or None


def issues_from_validation_error(root: str, exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False):
        # Drop pydantic's own steps (validator functions, RootModel `root`: no R4 element has
        # that name) so the location is the element's FHIRPath.
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or p == "root"))
        )
        msg = err["msg"]
        unknown = err["type"] == "extra_forbidden"
        if unknown:
            msg = "Unknown element"
        where = fhirpath_of(root, loc, keep_last=unknown)
        choice = _choice_element(msg) if err["type"] == "value_error" else None
        if choice:
            where += f".{choice}"
        issues.append(
            Issue(
                code=_ISSUE_CODE_BY_PYDANTIC.get(err["type"], "value"),
                diagnostics=f"{where}: {msg}",
                gw_code="GW-1100",
                expression=(where,),
            )
        )
    return issues


def validate_resource(resource: Any, expected_type: str | None = None, where: str = "") -> dict:
    """Check `resource` is a JSON object of a known type and structurally valid R4.

    `where` prefixes FHIRPath locations (e.g. 'Bundle.entry[3].resource') for bundle entries.
    Raises OperationOutcomeError (400 for structure, 404 for an unknown type on the URL).
    """
    root = where or (resource.get("resourceType") if isinstance(resource, dict) else None) or "$"
    if not isinstance(resource, dict):
        raise outcomes.bad_request("The body must be a JSON object (a FHIR resource)", root)
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise outcomes.bad_request(
            "Missing resourceType", f"{root}.resourceType" if where else None
        )
    if expected_type and rtype != expected_type:
        raise outcomes.bad_request(
            f"resourceType '{rtype}' does not match the URL's type '{expected_type}'",
            f"{where}.resourceType" if where else "resourceType",
            gw="GW-1015",
        )
    cls = model_class(rtype) if is_resource_type(rtype) else None
    if cls is None:
        raise outcomes.bad_request(
            f"Unknown resource type '{rtype}'",
            f"{where}.resourceType" if where else "resourceType",
            gw="GW-1016",
        )
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        raise outcomes.invalid_content(issues_from_validation_error(where or rtype, exc)) from None
    except RecursionError:
        raise outcomes.bad_request(
            "The resource is nested too deeply", where or rtype, gw="GW-1103"
        ) from None
    except KeyError:  # fhir_core's lookup of a nested resource's unknown resourceType
        issues = check_json_types(resource, cls, where or rtype)
        raise outcomes.invalid_content(
            issues or [outcomes.Issue("structure", "Unknown nested resource type", "GW-1105")]
        ) from None
    except (ValueError, TypeError) as exc:  # fhir.resources raises these from root validators
        raise outcomes.bad_request(
            f"Invalid resource: {exc}", where or rtype, gw="GW-1101"
        ) from None
    # The models coerce "yes" to true and "5" to 5: check the JSON types ourselves.
    issues = check_json_types(resource, cls, where or rtype)
    if issues:
        raise outcomes.invalid_content(issues)
    return resource
