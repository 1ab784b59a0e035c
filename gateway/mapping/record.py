"""One source record read against a spec's field declarations: values converted, defaults
filled, required fields checked, every problem named by its Chinese field name.

Field names of sub-records carry their position, counted from 1 like records: `成员[2].工号`.
A list of sub-records comes as a JSON array of objects, or in a CSV cell as `a:b:c;a:b:c`
(parts in the declared order; `；` and `：` too) or as JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.mapping.sources import ROW_ERROR
from gateway.mapping.spec import FieldSpec, Spec
from gateway.mapping.values import ValueProblem, clean, convert, fold

_LIST_SEPARATORS = re.compile(r"[;；,，、|]")
_ITEM_SEPARATORS = re.compile(r"[;；]")
_PART_SEPARATORS = re.compile(r"[:：]")

# Message codes (gateway/vocab/outcomes.py lists the GW-1xxx of the core).
MISSING, BAD_VALUE, UNKNOWN_CODE, NOT_A_RECORD, UNKNOWN_FIELD = (
    "GW-1700",
    "GW-1701",
    "GW-1702",
    "GW-1703",
    "GW-1704",
)


@dataclass(frozen=True)
class Problem:
    field: str | None  # the source field ("成员[2].工号"), None for the record as a whole
    message: str
    code: str = BAD_VALUE
    severity: str = "error"
    expression: str | None = None  # the FHIR element, when the problem came from validation


Values = dict[str, Any]


def read_record(spec: Spec, record: Any) -> tuple[Values, list[Problem]]:
    """(field → converted value, problems); values of absent fields are left out."""
    if not isinstance(record, Mapping):
        return {}, [Problem(None, "a record is a JSON object (field → value)", NOT_A_RECORD)]
    if ROW_ERROR in record:
        return {}, [Problem(None, f"the row does not fit the header: {record[ROW_ERROR]}")]
    problems: list[Problem] = []
    values = _read(spec, spec.fields.values(), record, "", problems)
    return values, problems


def unknown_fields(spec: Spec, record: Any) -> list[str]:
    """Fields of the record the spec does not declare (a misspelt header, a new column)."""
    if not isinstance(record, Mapping):
        return []
    known = {n for f in spec.fields.values() for n in f.names} | {ROW_ERROR}
    return [str(k) for k in record if k not in known]


def _read(
    spec: Spec,
    fields: Any,
    record: Mapping[str, Any],
    prefix: str,
    problems: list[Problem],
) -> Values:
    values: Values = {}
    for field in fields:
        raw = next(
            (clean(record[n]) for n in field.names if clean(record.get(n)) is not None), None
        )
        if raw is None and field.default is not None:
            raw = field.default
        if raw is None:
            continue
        label = prefix + field.name
        try:
            if field.items:
                values[field.name] = _sub_records(spec, field, raw, label, problems)
            elif field.many:
                values[field.name] = [_one(spec, field, v) for v in _split(raw)]
            else:
                values[field.name] = _one(spec, field, raw)
        except ValueProblem as exc:
            code = UNKNOWN_CODE if str(exc).startswith("unknown code") else BAD_VALUE
            problems.append(Problem(label, str(exc), code))
    for field in fields:
        if field.name in values or any(p.field == prefix + field.name for p in problems):
            continue
        if field.required or _required_now(spec, field, values):
            why = "" if field.required else f" (with {field.required_when[0]})"  # type: ignore[index]
            problems.append(Problem(prefix + field.name, f"required field missing{why}", MISSING))
    return values


def _one(spec: Spec, field: FieldSpec, raw: Any) -> Any:
    value = convert(field.kind, raw, spec.zone)
    if field.codes is not None:
        spec.tables[field.codes].code(value)  # unknown spellings are this field's problem
    return value


def _split(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        items = [clean(v) for v in raw]
    elif isinstance(raw, str):
        items = [clean(v) for v in _LIST_SEPARATORS.split(raw)]
    else:
        items = [raw]
    return [v for v in items if v is not None]


def _sub_records(
    spec: Spec, field: FieldSpec, raw: Any, label: str, problems: list[Problem]
) -> list[Values]:
    if isinstance(raw, str):
        raw = _parse_cell(field, raw)
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueProblem("expected a list of sub-records")
    out = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, Mapping):
            problems.append(Problem(f"{label}[{i}]", "a sub-record is an object", BAD_VALUE))
            continue
        out.append(_read(spec, field.items, item, f"{label}[{i}].", problems))
    return out


def _parse_cell(field: FieldSpec, text: str) -> Any:
    if text.lstrip().startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueProblem("not valid JSON") from None
    names = [f.name for f in field.items]
    rows = []
    for chunk in _ITEM_SEPARATORS.split(text):
        if not chunk.strip():
            continue
        parts = _PART_SEPARATORS.split(chunk)
        if len(parts) > len(names):
            raise ValueProblem(f"'{chunk}' has more than {len(names)} parts ({':'.join(names)})")
        rows.append(dict(zip(names, parts, strict=False)))
    return rows


def _required_now(spec: Spec, field: FieldSpec, values: Values) -> bool:
    if field.required_when is None:
        return False
    other, wanted = field.required_when
    value = values.get(other)
    if value is None:
        return False
    if not wanted:  # required whenever the other field has a value
        return True
    spellings = {fold(w) for w in wanted}
    if isinstance(value, str) and fold(value) in spellings:
        return True
    table = spec.fields[other].codes
    if table is None or not isinstance(value, str):
        return False
    try:
        return spec.tables[table].code(value) in wanted
    except ValueProblem:
        return False
