"""The field names of the HL7 v2 specs (mappings/hl7v2/hl7v2.yaml explains them) and a record
read from a view of a message by them: the segments a record sees (the message's MSH and PID,
its OBR group's ORC, OBR, SPM, one OBX), and exactly the fields its spec declares.

    PID-7   PID-5.2   PID-3.4.2   PID-3[5=NNCHN,ID].1   OBX-5[OBX-2=NM]   OBX-7#low

HL7 date/times (YYYYMMDDHHMMSS[.S][+ZZZZ]) become the engine's date and date-time text; text
values keep what they say (an HL7 null `""` is no value).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.hl7v2.er7 import Message, Rep, Segment
from gateway.mapping.spec import FieldSpec, Spec

VIRTUAL = ("MESSAGE", "MESSAGE-TYPE", "CHARSET", "RECEIVED")
_NAME = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})-(?P<field>\d+)(?:\[(?P<sel>[^\]]+)\])?"
    r"(?P<path>(?:\.\d+){0,2})(?:#(?P<part>\w+))?$"
)
_PATH = re.compile(r"^\d+(?:\.\d+)?$")
_SELECT_OTHER = re.compile(r"^(?P<seg>[A-Z][A-Z0-9]{2})-(?P<field>\d+)=(?P<values>.+)$")
_SELECT_COMPONENT = re.compile(r"^(?P<component>\d+)=(?P<values>.+)$")
_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<m>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<f>\.\d{1,4})?(?P<z>[+-]\d{4})?$"
)


@dataclass(frozen=True)
class FieldName:
    segment: str
    field: int
    path: tuple[int, ...] = ()  # component[, sub-component]
    part: str | None = None  # a named group of the field's pattern
    # repetitions whose component N holds one of the values, or the field only when another
    # field of the segment (its data type) holds one of them
    select_component: int | None = None
    select_field: int | None = None
    select_values: frozenset[str] = frozenset()
    virtual: str | None = None


def parse_name(name: str) -> FieldName:
    if name in VIRTUAL:
        return FieldName("", 0, virtual=name)
    m = _NAME.match(name)
    if m is None:
        raise ValueError("not an HL7 field name (PID-5.1, PID-3[5=NNCHN].1, OBX-5[OBX-2=NM])")
    path = tuple(int(p) for p in m["path"].split(".")[1:]) if m["path"] else ()
    out = FieldName(m["seg"], int(m["field"]), path, m["part"])
    sel = m["sel"]
    if sel is None:
        return out
    other = _SELECT_OTHER.match(sel)
    if other is not None:
        if other["seg"] != m["seg"]:
            raise ValueError("a selector names a field of the same segment")
        return FieldName(
            out.segment,
            out.field,
            path,
            out.part,
            select_field=int(other["field"]),
            select_values=_values(other["values"]),
        )
    comp = _SELECT_COMPONENT.match(sel)
    if comp is None:
        raise ValueError("a selector is [N=A,B] (component N) or [SEG-N=A,B] (another field)")
    return FieldName(
        out.segment,
        out.field,
        path,
        out.part,
        select_component=int(comp["component"]),
        select_values=_values(comp["values"]),
    )


def _values(text: str) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in text.split(",") if v.strip())


@dataclass
class View:
    """The segments one record sees, and the message (for the virtual fields)."""

    message: Message
    segments: Mapping[str, Segment]
    received: str  # ISO date-time
    patterns: Mapping[str, Sequence[re.Pattern[str]]]


def read(
    spec: Spec, names: Mapping[str, FieldName], view: View
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the record: declared field → value, the text of each decimal field as written)."""
    record: dict[str, Any] = {}
    decimals: dict[str, str] = {}
    for f in spec.fields.values():
        value = _value(f, names[f.name], view)
        if value is None:
            continue
        record[f.name] = value
        if f.kind == "decimal" and isinstance(value, str):
            decimals[f.name] = value.strip()
    return record, decimals


def _value(f: FieldSpec, name: FieldName, view: View) -> Any:
    if name.virtual is not None:
        return _virtual(name.virtual, view)
    seg = view.segments.get(name.segment)
    if seg is None:
        return None
    if name.select_field is not None:
        kind = _at(seg.field(name.select_field)[:1], (1, 1))
        if kind.upper() not in name.select_values:
            return None
    reps = seg.field(name.field)
    if name.select_component is not None:
        reps = [
            r for r in reps if _at([r], (name.select_component, 1)).upper() in name.select_values
        ]
    if f.items:
        items = []
        for rep in reps:
            sub = {i.name: _convert(i, v) for i in f.items if (v := _at([rep], _path(i.name)))}
            if sub:
                items.append(sub)
        return items or None
    if f.many:
        values = [v for rep in reps if (v := _at([rep], name.path or (1, 1)))]
        return values or None
    text = _at(reps[:1], name.path or (1, 1)) if reps else ""
    if not text:
        return None
    if name.part is not None:
        text = _part(view.patterns.get(f"{name.segment}-{name.field}", ()), text, name.part)
        if not text:
            return None
    return _convert(f, text)


def _path(item_name: str) -> tuple[int, ...]:
    if not _PATH.match(item_name):
        raise ValueError(f"'{item_name}' is not a component path (1, 4.2)")
    return tuple(int(p) for p in item_name.split("."))


def _at(reps: list[Rep], path: tuple[int, ...]) -> str:
    """The text at component[.sub-component] of the first repetition ('' when absent)."""
    if not reps:
        return ""
    comps = reps[0]
    c = path[0] if path else 1
    s = path[1] if len(path) > 1 else 1
    if c > len(comps) or s > len(comps[c - 1]):
        return ""
    text = comps[c - 1][s - 1].strip()
    return "" if text == '""' else text


def _part(patterns: Sequence[re.Pattern[str]], text: str, part: str) -> str:
    for pattern in patterns:
        m = pattern.match(text)
        if m is not None:
            return m.groupdict().get(part) or ""
    return ""


def _convert(f: FieldSpec, text: str) -> str:
    """HL7 DTM → the engine's date / date-time text; anything else as written (the engine
    converts and reports what does not)."""
    if f.kind not in ("date", "dateTime"):
        return text
    m = _DTM.match(text.strip())
    if m is None:
        return text  # the engine says what is wrong with it
    if f.kind == "date" or not m["h"]:
        if not (m["m"] and m["d"]):
            return text
        return f"{m['y']}-{m['m']}-{m['d']}"
    zone = f"{m['z'][:3]}:{m['z'][3:]}" if m["z"] else ""
    clock = f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}{m['f'] or ''}"
    return f"{m['y']}-{m['m']}-{m['d']} {clock}{zone}"


def _virtual(name: str, view: View) -> str:
    msg = view.message
    if name == "MESSAGE":
        return base64.b64encode(msg.raw).decode("ascii")
    if name == "MESSAGE-TYPE":
        msh9 = msg.first("MSH")
        comps = msh9.field(9)[0] if msh9 is not None and msh9.field(9) else []
        return "^".join(c[0] for c in comps[:2] if c and c[0])
    if name == "CHARSET":
        return {"gb18030": "GB18030", "utf-8": "UTF-8"}.get(msg.charset, msg.charset)
    return view.received
