"""What an $export kick-off asks for (FHIR Bulk Data Access IG v2, export.html), checked and
kept as JSON in the job row so any worker can run it.

Parameters: `_outputFormat` (NDJSON only), `_since` (an instant or a date), `_type` (repeated
or comma-separated), `_typeFilter` (`Type?search`, repeated or comma-separated; several for one
type are OR-ed, each one's parameters AND-ed, exactly as the same search at `GET [base]/Type?…`),
and at Patient and Group level `patient` (POST: references). Other parameters of the IG that
are not served (`_elements`, `includeAssociatedData`, `_until`, `organizeOutputBy`,
`allowPartialManifests`) and unknown ones are a 400, unless the client sends
`Prefer: handling=lenient`: then they are ignored and reported as warnings in the manifest's
error file.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirRequest
from gateway.search.compartment import patient_compartment
from gateway.search.query_values import date_range
from gateway.vocab import outcomes

_NEXT_FILTER = re.compile(r",(?=[A-Z][A-Za-z]+(?:\?|%3F))")
NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
KNOWN = frozenset({"_outputFormat", "_since", "_type", "_typeFilter", "patient"})
# Not resources anyone exports (the gateway's own bookkeeping is not a clinical record).
NOT_EXPORTED = frozenset({"Bundle", "Parameters", "OperationOutcome"})


def bad(text: str, where: str, gw: str = "GW-1860") -> outcomes.OperationOutcomeError:
    return outcomes.bad_request(text, where, gw)


@dataclass
class ExportSpec:
    level: str  # system | patient | group
    types: list[str]
    group: str | None = None  # Group id (group level)
    since: int | None = None  # µs
    # type → the `Type?search` filters OR-ed for it (query strings without the type)
    type_filters: dict[str, list[str]] = field(default_factory=dict)
    patients: list[str] | None = None  # the `patient` parameter's ids
    inactive: list[str] = field(default_factory=list)  # Group members marked inactive
    # A definitional Group's characteristics: {"kind": division | team, "value", "exclude"}
    criteria: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # ignored parameters (lenient)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ExportSpec:
        return cls(**json.loads(text))


def compartment_types() -> list[str]:
    """The types of a Patient or Group export: Patient and its compartment's types."""
    return sorted({"Patient", *(t for t, p in patient_compartment().items() if p)})


def _values(req: FhirRequest) -> list[tuple[str, Any]]:
    """(name, value) of every parameter: the query string, and a POSTed Parameters body."""
    out: list[tuple[str, Any]] = list(req.query)
    if req.method != "POST" or not (req.body or req.json_body is not None):
        return out
    from gateway.fhir.parse import parse_json

    body = req.json_body if req.json_body is not None else parse_json(req.body)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad("The body of a POST $export is a Parameters resource", "Parameters")
    params = body.get("parameter") or []
    if not isinstance(params, list):
        raise bad("Parameters.parameter must be an array", "Parameters.parameter")
    for i, p in enumerate(params):
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str):
            raise bad("Parameter without a name", f"Parameters.parameter[{i}]")
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        if value is None:
            raise bad(f"Parameter {name} without a value", f"Parameters.parameter[{i}]")
        out.append((name, value))
    return out


def _split(value: Any) -> list[str]:
    if isinstance(value, dict):  # valueReference
        value = value.get("reference", "")
    return [v.strip() for v in str(value).split(",") if v.strip()]


def parse_export(req: FhirRequest, level: str, group: str | None) -> ExportSpec:
    lenient = "handling=lenient" in (req.header("prefer") or "").replace(" ", "")
    spec = ExportSpec(level=level, types=[], group=group)
    given: list[str] = []
    filters: list[str] = []
    patients: list[str] = []
    for name, value in _values(req):
        if name == "_outputFormat":
            if str(value) not in NDJSON_FORMATS:
                raise bad(
                    f"_outputFormat {value!r} is not served: application/fhir+ndjson only",
                    "_outputFormat",
                    "GW-1861",
                )
        elif name == "_since":
            spec.since = date_range(str(value), "_since")[0]
        elif name == "_type":
            given.extend(_split(value))
        elif name == "_typeFilter":
            # Comma-separated filters: a comma starts a new one only before `Type?` (a comma
            # inside a filter ORs the values of one of its parameters).
            filters.extend(f.strip() for f in _NEXT_FILTER.split(str(value)) if f.strip())
        elif name == "patient":
            if level == "system":
                raise bad("patient applies to Patient and Group exports only", "patient")
            patients.extend(_split(value))
        elif name in KNOWN:
            continue
        elif lenient:
            spec.warnings.append(f"The parameter {name} is not supported and was ignored")
        else:
            raise bad(
                f"The parameter {name} is not supported by $export here "
                "(send Prefer: handling=lenient to have it ignored)",
                name,
                "GW-1862",
            )
    allowed = compartment_types() if level != "system" else None
    for t in given:
        if not is_resource_type(t):
            raise bad(f"Unknown resource type '{t}' in _type", "_type", "GW-1863")
        if allowed is not None and t not in allowed:
            raise bad(
                f"{t} is not in the Patient compartment: a {level} export holds Patient "
                "and the resources of its compartment",
                "_type",
                "GW-1864",
            )
    types = list(dict.fromkeys(given)) or (allowed or [])
    for f in filters:
        t, sep, query = (f if "?" in f else unquote(f)).partition("?")
        if not sep or not is_resource_type(t):
            raise bad(f"_typeFilter {f!r} is not Type?search", "_typeFilter", "GW-1865")
        if given and t not in given:
            raise bad(f"_typeFilter names {t}, which _type leaves out", "_typeFilter", "GW-1866")
        if allowed is not None and t not in allowed:
            raise bad(f"_typeFilter names {t}, outside the Patient compartment", "_typeFilter")
        spec.type_filters.setdefault(t, []).append(query)
    ids = []
    for p in patients:
        if "/" in p and not p.startswith("Patient/"):
            raise bad(f"patient {p!r} is not a Patient reference", "patient", "GW-1867")
        ids.append(p.removeprefix("Patient/"))
    spec.patients = ids or None
    spec.types = [t for t in types if t not in NOT_EXPORTED]
    return spec


def filter_params(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)
