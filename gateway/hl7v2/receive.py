"""A received HL7 v2 message: planned (gateway.hl7v2.plan), written as one FHIR transaction
through the caller's `transact` (the FHIR core's transaction interaction: validation, access
control, the domain rules such as the mutual-recognition mark, provenance), and acknowledged.

The message is stored whole or not at all. AA: stored (MSA-2 its control ID). AE: its content
is wrong (unreadable, a required field missing, a value or code not taken, a FHIR rule
broken): nothing stored, every problem located in an ERR. AR: refused for a reason that is
not its content (a message type not taken, the database away): nothing stored; the sender may
send it again. Sending a message again updates what it stored (every resource is written by
its business identifier), never duplicates it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.hl7v2.ack import Header, acknowledgement
from gateway.hl7v2.config import Hl7Config, config
from gateway.hl7v2.er7 import MessageError, charset_name
from gateway.hl7v2.plan import Hl7Problem, Location, MessagePlan, plan_message
from gateway.vocab.outcomes import OperationOutcomeError

Transact = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
REJECT_CODES = {"200", "201", "202", "203"}  # not the content: AR


@dataclass
class Received:
    code: str  # AA | AE | AR
    ack: bytes  # the acknowledgement, in the message's charset
    control_id: str | None = None
    message_type: str | None = None
    problems: list[Hl7Problem] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)  # FHIR issues, located
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    status: int = 200  # the HTTP status a failure had (503: the database away)
    codec: str = "utf-8"  # the charset of the message and of its acknowledgement

    @property
    def ok(self) -> bool:
        return self.code == "AA"


@dataclass
class Prepared:
    """A message planned and ready to be written (its acknowledgement's header known)."""

    plan: MessagePlan
    header: Header
    codec: str


async def receive(
    raw: bytes, transport_charset: str | None, transact: Transact, cfg: Hl7Config | None = None
) -> Received:
    ready = prepare(raw, transport_charset, cfg)
    if isinstance(ready, Received):
        return ready
    try:
        response = await transact(ready.plan.bundle())
    except OperationOutcomeError as err:
        return write_failed(ready, err)
    return accepted(ready, list(response.get("entry") or []))


def prepare(
    raw: bytes, transport_charset: str | None, cfg: Hl7Config | None = None
) -> Prepared | Received:
    """The message planned, or already refused (its NAK) when it cannot be."""
    cfg = cfg or config()
    received = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime(
        "%Y-%m-%d %H:%M:%S+08:00"
    )
    header, codec = _header(raw, cfg)
    try:
        plan = plan_message(raw, transport_charset, cfg, received)
    except MessageError as exc:
        where = Location(exc.segment, exc.ordinal, exc.field_no) if exc.segment else Location()
        problem = Hl7Problem(
            f"{where.label()}: {exc}" if exc.segment else str(exc), where, exc.code
        )
        code = "AR" if exc.code in REJECT_CODES else "AE"
        return _failed(code, header, codec, [problem], 400)
    header = _header_of(plan, header)
    codec = plan.message.charset
    if not plan.ok:
        return _failed("AE", header, codec, plan.problems, 422, plan)
    return Prepared(plan, header, codec)


def write_failed(ready: Prepared, err: OperationOutcomeError) -> Received:
    """The NAK of a message whose transaction failed, each problem located in the message."""
    errors = [i for i in err.issues if _severity(i) in ("error", "fatal")] or err.issues
    problems = [_located(ready.plan, issue) for issue in errors]
    code = "AR" if err.status in (429, 503) else "AE"
    return _failed(code, ready.header, ready.codec, problems, err.status, ready.plan, err)


def accepted(ready: Prepared, answers: Sequence[dict[str, Any] | None]) -> Received:
    """The ACK of a stored message; `answers` are the transaction's response entries of its
    own entries, in order (None where another message of a group wrote the entry)."""
    plan = ready.plan
    out = Received(
        "AA",
        _encode(acknowledgement("AA", ready.header), ready.codec),
        plan.control_id,
        plan.rule.name,
        codec=ready.codec,
    )
    for sent, entry in zip(plan.entries, answers, strict=False):
        if entry is None:
            continue
        answer = entry.get("response") or {}
        ref = str(answer.get("location", "")).split("/_history/", 1)[0]
        created = str(answer.get("status", "")).startswith("201")
        if sent["request"]["method"] == "POST" and not created:
            continue  # a create-only resource (the patient, the lab) found: left as it was
        if ref:
            (out.created if created else out.updated).append(ref)
    return out


def refusal(raw: bytes, reason: str, cfg: Hl7Config | None = None) -> Received:
    """AR for a message that was not looked at (not a block, too large, not stored now)."""
    header, codec = _header(raw, cfg or config())
    problem = Hl7Problem(reason, Location(), "207")
    return _failed("AR", header, codec, [problem], 503)


def split_messages(body: bytes) -> Iterator[bytes]:
    """The messages of a body holding several (each starts with MSH at a line's start);
    batch envelopes (FHS, BHS, BTS, FTS) and MLLP framing characters are left out."""
    body = body.replace(b"\x0b", b"").replace(b"\x1c", b"")
    current: list[bytes] = []
    for line in body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r"):
        if not line.strip():
            continue
        if line[:3] in (b"FHS", b"BHS", b"BTS", b"FTS"):
            continue
        if line.startswith(b"MSH") and current:
            yield b"\r".join(current) + b"\r"
            current = []
        current.append(line)
    if current:
        yield b"\r".join(current) + b"\r"


def _severity(issue: Any) -> str:
    return str((issue.rendered or {}).get("severity") or issue.severity)


def _located(plan: MessagePlan, issue: Any) -> Hl7Problem:
    rendered = issue.rendered or {}
    text = (
        issue.diagnostics
        or rendered.get("diagnostics")
        or (rendered.get("details") or {}).get("text")
        or "rejected"
    )
    expressions = list(issue.expression or []) or list(rendered.get("expression") or [])
    for expression in expressions:
        found = plan.locate(expression) or plan.locate_type(expression)
        if found is not None:
            where, _ = found
            return Hl7Problem(f"{where.label()}: {text}", where, "207", expression)
    return Hl7Problem(str(text), Location(), "207", expressions[0] if expressions else None)


def _failed(
    code: str,
    header: Header,
    codec: str,
    problems: list[Hl7Problem],
    status: int,
    plan: MessagePlan | None = None,
    err: OperationOutcomeError | None = None,
) -> Received:
    ack = _encode(acknowledgement(code, header, problems), codec)
    out = Received(
        code,
        ack,
        header.control_id or None,
        plan.rule.name if plan else None,
        problems,
        status=status,
        codec=codec,
    )
    for p in problems:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": "transient"
            if status in (429, 503)
            else ("structure" if p.code in ("100", "102") and plan is None else "invalid"),
            "details": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0357", "code": p.code}
                ]
            },
            "diagnostics": p.message,
            "location": [p.where.label()],
        }
        if p.expression:
            issue["expression"] = [p.expression]
        out.issues.append(issue)
    return out


def _header(raw: bytes, cfg: Hl7Config) -> tuple[Header, str]:
    """What an acknowledgement echoes, read from the MSH as well as it can be (a message that
    cannot be parsed still gets an AE naming its control ID when that is readable)."""
    line = raw.lstrip(b"\x0b\xef\xbb\xbf").split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not line.startswith(b"MSH") or len(line) < 8:
        return Header(), "utf-8"
    sep = line[3:4].decode("latin-1")
    parts = line.decode("latin-1").split(sep)
    msh18 = parts[17] if len(parts) > 17 else ""
    codec = charset_name(msh18, cfg.charsets) or "utf-8"
    try:
        parts = line.decode(codec).split(sep)
    except UnicodeDecodeError:
        codec = "gb18030"
        parts = line.decode(codec, errors="replace").split(sep)

    def f(n: int) -> str:
        return parts[n - 1] if len(parts) >= n else ""

    comp = f(2)[:1] or "^"
    msh9 = f(9).split(comp)
    return Header(
        f(3),
        f(4),
        f(5),
        f(6),
        msh9[1] if len(msh9) > 1 else "",
        f(10),
        f(11) or "P",
        f(12) or "2.5.1",
        msh18,
    ), codec


def _header_of(plan: MessagePlan, header: Header) -> Header:
    return Header(
        header.sending_app,
        header.sending_facility,
        header.receiving_app,
        header.receiving_facility,
        header.event,
        plan.control_id,
        header.processing_id,
        header.version,
        header.charset_field,
    )


def _encode(text: str, codec: str) -> bytes:
    return text.encode(codec, errors="replace")
