"""One HL7 v2 message → one FHIR transaction: the records its type is cut into
(mappings/hl7v2/hl7v2.yaml `messages`), each mapped by its spec with the regional mappings'
engine, the resources deduplicated by business key, linked (a report's results, the message's
DocumentReference related to its reports), and every entry remembered with the segments it
came from, so that a problem found later (validation, a rule) is reported at the segment and
field of the message (`OBX[2]-5`).

Segment order is tolerated where the meaning cannot change: PID, PV1 anywhere; ORC, NTE, OBX,
SPM belong to the OBR before them, and to the only OBR of a message when they come before it.
An OBX before the first of several OBRs cannot be placed: the message is refused there.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.hl7v2.config import Hl7Config, MessageRule, RecordRule
from gateway.hl7v2.er7 import Message, MessageError, Segment, parse
from gateway.hl7v2.fields import View, read
from gateway.mapping.locate import entry_path, fields_at, relative
from gateway.mapping.plan import MappedRecord, Planned, map_record
from gateway.mapping.record import MISSING, UNKNOWN_CODE, Problem
from gateway.vocab.json_io import json_copy

MESSAGE_LEVEL = ("MSH", "EVN", "PID", "PD1", "PV1")
GROUP_LEVEL = ("ORC", "OBX", "NTE", "SPM", "TQ1", "CTI")


@dataclass(frozen=True)
class Location:
    """Where in the message (ERR-2: segment ID, sequence, field, component)."""

    segment: str | None = None
    ordinal: int = 1
    field: int | None = None
    component: int | None = None

    def label(self) -> str:
        if self.segment is None:
            return "message"
        out = f"{self.segment}[{self.ordinal}]"
        if self.field is not None:
            out += f"-{self.field}"
            if self.component is not None:
                out += f".{self.component}"
        return out


@dataclass(frozen=True)
class Hl7Problem:
    message: str
    where: Location
    code: str = "207"  # HL7 0357: 100 sequence, 101 required, 102 data type, 103 table, 207 app
    expression: str | None = None  # the FHIR element, when found by validation or a rule


@dataclass
class Origin:
    rule: RecordRule
    segments: dict[str, Segment]
    planned: Planned


@dataclass
class MessagePlan:
    message: Message
    rule: MessageRule
    control_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    problems: list[Hl7Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bundle(self) -> dict[str, Any]:
        """A fresh transaction Bundle (the transaction rewrites links in place)."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": json_copy(self.entries),
        }

    def locate(self, expression: str) -> tuple[Location, str] | None:
        """A FHIR location in the transaction (`Bundle.entry[3].resource.valueQuantity`) →
        (the message's segment and field, the element relative to its resource)."""
        found = entry_path(expression)
        if found is None:
            return None
        index, path = found
        if index >= len(self.origins):
            return None
        origin = self.origins[index]
        return _where(origin, fields_at(origin.planned.locations, path)), path

    def locate_type(self, expression: str) -> tuple[Location, str] | None:
        """A location a rule reported on a resource alone (`DiagnosticReport.extension`): the
        first entry of that type."""
        head = expression.split(".", 1)[0]
        for origin in self.origins:
            if origin.planned.type == head:
                path = relative(expression, head)
                return _where(origin, fields_at(origin.planned.locations, path)), path
        return None


def plan_message(
    raw: bytes, transport_charset: str | None, cfg: Hl7Config, received: str
) -> MessagePlan:
    """Raises MessageError when the message cannot be read or its type is not taken."""
    message = parse(raw, transport_charset, cfg.charsets)
    msh = message.first("MSH")
    assert msh is not None
    control_id = message.text("MSH", 10)
    if not control_id:
        raise MessageError("MSH-10 (message control ID) is required", "MSH", 10, code="101")
    kind, event = message.text("MSH", 9, 1), message.text("MSH", 9, 2)
    if not kind:
        raise MessageError("MSH-9 (message type) is required", "MSH", 9, code="101")
    rule = cfg.messages.get(f"{kind}^{event}")
    if rule is None:
        known = ", ".join(cfg.messages)
        code = "201" if any(k.startswith(kind + "^") for k in cfg.messages) else "200"
        raise MessageError(
            f"message type {kind}^{event} is not taken (taken: {known})", "MSH", 9, code=code
        )
    out = MessagePlan(message, rule, control_id)
    top = {name: s for name in MESSAGE_LEVEL if (s := message.first(name)) is not None}
    groups = _groups(message, out)
    if any(r.per != "message" for r in rule.records) and not groups and not out.problems:
        out.problems.append(Hl7Problem(f"{rule.name} needs an OBR segment", Location("OBR"), "101"))
    if out.problems:
        return out
    views: list[tuple[RecordRule, dict[str, Segment]]] = []
    for rec in rule.records:
        if rec.per == "message":
            views.append((rec, dict(top)))
        for group in groups:
            base = {**top, **{n: g[0] for n, g in group.items() if g and n != "OBX"}}
            if rec.per == "OBR":
                views.append((rec, base))
            elif rec.per == "OBX":
                views += [(rec, {**base, "OBX": obx}) for obx in group.get("OBX", [])]
    planned: list[tuple[RecordRule, dict[str, Segment], MappedRecord]] = []
    decimals: list[dict[str, str]] = []
    for n, (rec, segs) in enumerate(views, 1):
        view = View(message, segs, received, cfg.patterns)
        record, texts = read(rec.spec, cfg.names, view)
        mapped = map_record(rec.spec, record, n, _full_url)
        for p in mapped.problems:
            if p.severity == "error":
                out.problems.append(_problem(p, segs))
        planned.append((rec, segs, mapped))
        decimals.append(texts)
    if out.problems:
        return out
    _entries(out, planned, decimals)
    return out


def _full_url(name: str) -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _groups(message: Message, out: MessagePlan) -> list[dict[str, list[Segment]]]:
    """The OBR groups: an ORC starts the next OBR's; OBX, NTE, SPM follow their OBR."""
    groups: list[dict[str, list[Segment]]] = []
    pending: dict[str, list[Segment]] = {}
    orphans: list[Segment] = []
    for seg in message.segments:
        if seg.name == "OBR":
            group = {"OBR": [seg], **pending}
            pending = {}
            groups.append(group)
        elif seg.name == "ORC":  # an order's ORC comes before its OBR
            pending.setdefault("ORC", []).append(seg)
        elif seg.name in GROUP_LEVEL:
            if groups:
                groups[-1].setdefault(seg.name, []).append(seg)
            else:
                orphans.append(seg)
    if pending and groups and "ORC" not in groups[-1]:  # an ORC after its OBR
        groups[-1]["ORC"] = pending["ORC"]
    if orphans and len(groups) == 1:  # before the message's only OBR: its own
        for seg in orphans:
            groups[0].setdefault(seg.name, []).insert(0, seg)
    elif orphans and groups:
        first = orphans[0]
        out.problems.append(
            Hl7Problem(
                f"{first.name} before the first of {len(groups)} OBR segments: "
                "its report is unknown",
                Location(first.name, first.ordinal),
                "100",
            )
        )
    for group in groups:  # keep the message's order within a group (OBX set IDs)
        for segs in group.values():
            segs.sort(key=lambda s: s.position)
    return groups


def _problem(p: Problem, segs: dict[str, Segment]) -> Hl7Problem:
    where = _location(p.field, segs) if p.field else Location()
    code = {MISSING: "101", UNKNOWN_CODE: "103"}.get(p.code, "102")
    return Hl7Problem(f"{where.label()}: {p.message}" if p.field else p.message, where, code)


_LABEL = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\[[^\]]*\])?(?:\[\d+\])?(?:\.(\d+))?")


def _location(label: str, segs: dict[str, Segment]) -> Location:
    m = _LABEL.match(label)
    if m is None:
        return Location("MSH") if label in ("MESSAGE", "MESSAGE-TYPE", "CHARSET") else Location()
    seg = segs.get(m.group(1))
    component = int(m.group(3)) if m.group(3) else None
    if component is None:
        tail = re.search(r"\]\.(\d+)", label)  # PID-3[5=PI][2].1: the component of an item
        component = int(tail.group(1)) if tail else None
    return Location(m.group(1), seg.ordinal if seg else 1, int(m.group(2)), component)


def _where(origin: Origin, labels: list[str]) -> Location:
    for label in labels:
        loc = _location(label, origin.segments)
        if loc.segment is not None:
            return loc
    # no field filled it: the record's own segment
    for name in ("OBX", "OBR", "PID", "MSH"):
        if name in origin.segments:
            return Location(name, origin.segments[name].ordinal)
    return Location()


def _entries(
    out: MessagePlan,
    planned: list[tuple[RecordRule, dict[str, Segment], MappedRecord]],
    decimals: list[dict[str, str]],
) -> None:
    by_key: dict[tuple[str, str], str] = {}
    same: dict[str, str] = {}  # a later duplicate's fullUrl → the first's
    reports: list[str] = []
    results: dict[int, list[str]] = {}  # id(OBR segment) → its Observations' fullUrls
    report_of: dict[str, int] = {}
    document: dict[str, Any] | None = None
    for (rec, segs, mapped), texts in zip(planned, decimals, strict=True):
        for p in mapped.entries:
            key = (p.type, p.query or p.full_url)
            if key in by_key:
                same[p.full_url] = by_key[key]
                continue
            by_key[key] = p.full_url
            resource = p.resource  # rendered for this message alone: changed in place
            _exact_decimals(resource, p, texts)
            if p.spec.name in rec.create_only:
                request = {"method": "POST", "url": p.type, "ifNoneExist": p.query}
            else:
                request = {"method": "PUT", "url": f"{p.type}?{p.query}"}
            out.entries.append({"fullUrl": p.full_url, "resource": resource, "request": request})
            out.origins.append(Origin(rec, segs, p))
            obr = segs.get("OBR")
            if p.type == "DiagnosticReport" and obr is not None:
                reports.append(p.full_url)
                report_of[p.full_url] = id(obr)
            elif p.type == "Observation" and obr is not None:
                results.setdefault(id(obr), []).append(p.full_url)
            elif p.type == "DocumentReference":
                document = resource
    in_bundle = {f"{t}?{q}": url for (t, q), url in by_key.items()}
    for entry in out.entries:
        resource = entry["resource"]
        if resource["resourceType"] == "DiagnosticReport":
            obs = results.get(report_of.get(entry["fullUrl"], 0), [])
            if obs:
                resource["result"] = [{"reference": url} for url in obs]
        _link(resource, in_bundle, same)
    if document is not None and reports:
        document["context"] = {"related": [{"reference": url} for url in reports]}


def _link(node: Any, in_bundle: dict[str, str], same: dict[str, str]) -> None:
    """Conditional references to a resource of this message → its entry; references to a
    duplicate → the entry kept."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            node["reference"] = same.get(ref) or in_bundle.get(ref) or ref
        for value in node.values():
            if isinstance(value, dict | list):
                _link(value, in_bundle, same)
    elif isinstance(node, list):
        for value in node:
            _link(value, in_bundle, same)
        refs = [v.get("reference") for v in node if isinstance(v, dict) and set(v) == {"reference"}]
        if len(refs) != len(set(refs)):  # two fields naming one resource (OBX-23 and MSH-4)
            seen: set[str] = set()
            kept = []
            for v in node:
                if isinstance(v, dict) and set(v) == {"reference"}:
                    if v["reference"] in seen:
                        continue
                    seen.add(v["reference"])
                kept.append(v)
            node[:] = kept


def _exact_decimals(resource: dict[str, Any], p: Planned, texts: dict[str, str]) -> None:
    """Decimals as the lab wrote them (5.60 stays 5.60: its precision is part of the result)."""
    if not texts:
        return
    for path, labels in p.locations:
        text = next((texts[label] for label in labels if label in texts), None)
        if text is None:
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            continue
        if value.is_finite():
            _set(resource, path, value)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _set(resource: dict[str, Any], path: str, value: Any) -> None:
    steps: list[str | int] = [
        m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(path)
    ]
    node: Any = resource
    for step in steps[:-1]:
        node = node[step]
    node[steps[-1]] = value
