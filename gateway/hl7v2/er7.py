"""An HL7 v2 message in ER7 (pipe-and-hat) encoding: decoded in its charset, parsed with the
`hl7` library (python-hl7), and held as plain lists, every leaf unescaped.

Charset: MSH-18 when the message names one (mappings/hl7v2/hl7v2.yaml `charsets`), else the
transport's (the Content-Type's charset), else UTF-8 when the bytes are UTF-8, else GB18030.
GB18030's second bytes can be `|`, `^`, `~` or `\\`, so a message is decoded before it is
split, never split as bytes.

A segment is a list of fields (index 0: the segment's name; MSH-1 is the field separator, as
the standard numbers them); a field a list of repetitions; a repetition a list of components;
a component a list of sub-components (text). Escapes (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\.br\\ …)
are replaced by python-hl7's unescape; hex data (\\X..\\) is decoded as bytes in the
message's charset (python-hl7 would read each byte as a character).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import hl7
from hl7.containers import Component, Repetition
from hl7.util import unescape

Leaf = str
Rep = list[list[Leaf]]  # components → sub-components
Field = list[Rep]  # repetitions

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


class MessageError(ValueError):
    """A message that cannot be read; `where` locates the problem (segment, ordinal, field)."""

    def __init__(
        self,
        message: str,
        segment: str | None = None,
        field_no: int | None = None,
        ordinal: int = 1,
        code: str = "102",
    ):
        super().__init__(message)
        self.segment = segment
        self.field_no = field_no
        self.ordinal = ordinal
        self.code = code  # HL7 table 0357: 100 segment sequence, 101 required, 102 data type…


@dataclass
class Segment:
    name: str
    fields: list[Field]  # fields[n] is field n (fields[0] the name)
    ordinal: int = 1  # the n-th segment of this name in the message
    position: int = 0  # its place among all segments

    def field(self, n: int) -> Field:
        return self.fields[n] if n < len(self.fields) else []


@dataclass
class Message:
    raw: bytes
    charset: str  # the codec it was decoded with
    segments: list[Segment] = field(default_factory=list)
    separators: str = "|^~\\&"

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def text(self, name: str, n: int, component: int = 1) -> str:
        seg = self.first(name)
        if seg is None:
            return ""
        reps = seg.field(n)
        if not reps or len(reps[0]) < component:
            return ""
        subs = reps[0][component - 1]
        return subs[0] if subs else ""


def charset_name(msh18: str, charsets: Mapping[str, str]) -> str | None:
    """The codec MSH-18 names (None: it names none we know)."""
    key = " ".join(msh18.split()).upper()
    for name, codec in charsets.items():
        if " ".join(name.split()).upper() == key:
            return codec
    return None


def decode(
    raw: bytes, transport_charset: str | None, charsets: Mapping[str, str]
) -> tuple[str, str]:
    """(text, codec): see the module's docstring for the order of the charsets tried."""
    body = raw.lstrip(b"\xef\xbb\xbf")
    declared = _msh18(body)
    codec = charset_name(declared, charsets) if declared else None
    if declared and codec is None:
        raise MessageError(
            f"MSH-18 names an unknown character set '{declared}'", "MSH", 18, code="203"
        )
    if codec is None and transport_charset:
        try:
            codec = codecs.lookup(transport_charset).name
        except LookupError:
            raise MessageError(
                f"unknown charset '{transport_charset}'", "MSH", 18, code="203"
            ) from None
    candidates = [codec] if codec else ["utf-8", "gb18030"]
    for name in candidates:
        try:
            return body.decode(name), name
        except UnicodeDecodeError as exc:
            last = exc
    raise MessageError(
        f"the message is not valid {candidates[-1]}: {last.reason} at byte {last.start}",
        "MSH",
        18,
        code="102",
    )


def _msh18(body: bytes) -> str:
    """MSH-18 read from the bytes as Latin-1 (all that matters is ASCII): the charset is
    needed before the message can be decoded."""
    head = body.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if not head.startswith("MSH") or len(head) < 4:
        return ""
    parts = head.split(head[3])
    return parts[17].split(head[4] if len(head) > 4 else "^")[0].strip() if len(parts) > 17 else ""


def parse(raw: bytes, transport_charset: str | None, charsets: Mapping[str, str]) -> Message:
    text, codec = decode(raw, transport_charset, charsets)
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\x0b\x1c ")
    if not text.startswith("MSH"):
        raise MessageError("a message starts with its MSH segment", "MSH", None, code="100")
    if len(text) < 8 or text[3] in "\r" or not text[4:8].strip():
        raise MessageError("MSH-1 and MSH-2 (the separators) are missing", "MSH", 1, code="102")
    lines = [line for line in text.split("\r") if line.strip()]
    for i, line in enumerate(lines, 1):
        if not _SEGMENT_ID.fullmatch(line[:3]) or (len(line) > 3 and line[3] != text[3]):
            raise MessageError(
                f"segment {i} does not start with a segment ID and the field separator",
                line[:3] if _SEGMENT_ID.fullmatch(line[:3]) else None,
                None,
                i,
                code="100",
            )
    try:
        parsed = hl7.parse("\r".join(lines))
    except Exception as exc:  # python-hl7 raises plain exceptions on broken input
        raise MessageError(f"the message cannot be parsed: {exc}", code="102") from None
    message = Message(raw, codec, separators=text[3:8])
    counts: dict[str, int] = {}
    for position, seg in enumerate(parsed):
        name = str(seg[0][0]) if len(seg) and len(seg[0]) else ""
        counts[name] = counts.get(name, 0) + 1
        fields: list[Field] = [[[[name]]]]
        for i, f in enumerate(seg[1:], 1):
            if name == "MSH" and i <= 2:  # separators: as written, never unescaped
                fields.append([[[str(f[0]) if len(f) else ""]]])
                continue
            fields.append(_field(f, parsed, codec))
        message.segments.append(Segment(name, fields, counts[name], position))
    return message


def _field(f: object, parsed: hl7.Message, codec: str) -> Field:
    items = list(f)  # type: ignore[call-overload]
    if items and isinstance(items[0], Repetition):
        return [_rep(r, parsed, codec) for r in items]
    return [[[_text(str(items[0]) if items else "", parsed, codec)]]]


def _rep(rep: Repetition, parsed: hl7.Message, codec: str) -> Rep:
    out: Rep = []
    for c in rep:
        if isinstance(c, Component):
            out.append([_text(str(s), parsed, codec) for s in c])
        else:
            out.append([_text(str(c), parsed, codec)])
    return out


_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def _text(value: str, parsed: hl7.Message, codec: str) -> str:
    """One leaf unescaped: \\Xhh…\\ as bytes of the message's charset, every other escape by
    python-hl7."""
    esc = parsed.esc
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c != esc:
            out.append(c)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end < 0:  # an escape character alone: kept as written
            out.append(value[i:])
            break
        seq = value[i + 1 : end]
        if seq[:1] == "X" and _HEX.match(seq[1:]) and len(seq) % 2 == 1:
            out.append(bytes.fromhex(seq[1:]).decode(codec, errors="replace"))
        else:
            out.append(unescape(parsed, value[i : end + 1]))
        i = end + 1
    return "".join(out)
