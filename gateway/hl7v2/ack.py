"""The acknowledgement of a message (HL7 v2 original mode, chapter 2.9.2): MSH, MSA (AA, AE or
AR with MSA-2 the message's control ID) and, for an AE/AR, one ERR per problem locating it
(ERR-2 segment ^ sequence ^ field ^ ^ component, ERR-3 an HL7 0357 code, ERR-4 E, ERR-8 the
text). Encoded in the message's own charset and declared in MSH-18 as the message did."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.hl7v2.plan import Hl7Problem

ERROR_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "207": "Application internal error",
}


@dataclass(frozen=True)
class Header:
    """What the acknowledgement echoes of the message (all empty for one that could not be
    read)."""

    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"
    charset_field: str = ""  # MSH-18 as the message wrote it


def acknowledgement(
    code: str, header: Header, problems: Sequence[Hl7Problem] = (), note: str = ""
) -> str:
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d%H%M%S%z")
    msh = [
        "MSH",
        "^~\\&",
        header.receiving_app or "JTYS-GATEWAY",
        header.receiving_facility,
        header.sending_app,
        header.sending_facility,
        now,
        "",
        f"ACK^{header.event}^ACK" if header.event else "ACK",
        uuid.uuid4().hex[:20],
        header.processing_id or "P",
        header.version or "2.5.1",
        "",
        "",
        "",
        "",
        "",
        header.charset_field,
    ]
    msa = f"MSA|{code}|{header.control_id}" + (f"|{_esc(note)}" if note else "")
    segments = ["|".join(msh).rstrip("|"), msa]
    for p in problems:
        w = p.where
        where = "^".join(
            [
                w.segment or "",
                str(w.ordinal) if w.segment else "",
                str(w.field) if w.field is not None else "",
                "",
                str(w.component) if w.component is not None else "",
            ]
        ).rstrip("^")
        text = ERROR_TEXT.get(p.code, "Application error")
        severity = "E"
        segments.append(f"ERR||{where}|{p.code}^{text}^HL70357|{severity}||||{_esc(p.message)}")
    return "\r".join(segments) + "\r"


def _esc(text: str) -> str:
    """Separators in text as HL7 escapes (the escape character first)."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", "\\X0D\\")
        .replace("\n", "\\X0A\\")
    )
