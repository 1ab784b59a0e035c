"""Reading a message without a database: charsets (MSH-18, the transport's, detected), every
escape, separators the message declares, the acknowledgement's form."""

from __future__ import annotations

import pytest

from gateway.hl7v2.ack import Header, acknowledgement
from gateway.hl7v2.config import config
from gateway.hl7v2.er7 import MessageError, parse
from gateway.hl7v2.plan import Hl7Problem, Location

CHARSETS = config().charsets


def msh(charset_field: str = "", sep: str = "|", enc: str = "^~\\&") -> str:
    f = [
        "MSH", enc, "LIS", "LAB^1^USCC", "GW", "JTYS", "20261203", "", "ORU^R01", "C1", "P",
        "2.5.1", "", "", "", "", "", charset_field,
    ]  # fmt: skip
    return sep.join(f)


def value(text: str, charset: str = "utf-8", transport: str | None = None) -> str:
    raw = msh("UNICODE UTF-8" if charset == "utf-8" else "GB 18030-2000") + "\r" + text
    m = parse(raw.encode(charset), transport, CHARSETS)
    seg = m.segments[1]
    return seg.fields[5][0][0][0]


def test_escapes() -> None:
    assert value("OBX|1|ST|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f") == "a|b^c&d~e\\f"
    assert value("OBX|1|ST|||\\XE5BCA0\\三") == "张三"  # hex: UTF-8 bytes of the message
    assert value("OBX|1|ST|||\\XD5C5\\三", "gb18030") == "张三"  # GB18030 bytes
    assert value("OBX|1|ST|||\\E\\X41\\") == "\\X41\\"  # an escaped escape is text
    assert value("OBX|1|ST|||第一行\\.br\\第二行") == "第一行\r第二行"


def test_charsets() -> None:
    text = msh() + "\rPID|1||||张三"
    # no MSH-18: UTF-8 when the bytes are UTF-8, else GB18030, or what the transport says
    assert parse(text.encode("utf-8"), None, CHARSETS).charset == "utf-8"
    assert parse(text.encode("gb18030"), None, CHARSETS).charset == "gb18030"
    m = parse(text.encode("gb18030"), "GB18030", CHARSETS)
    assert m.segments[1].fields[5][0][0][0] == "张三"
    with pytest.raises(MessageError) as err:
        parse((msh("EBCDIC") + "\r").encode(), None, CHARSETS)
    assert err.value.code == "203" and err.value.field_no == 18
    with pytest.raises(MessageError):
        parse(text.encode("gb18030"), "utf-8", CHARSETS)  # declared UTF-8, it is not


def test_declared_separators() -> None:
    raw = msh(sep="#", enc="$~\\&") + "\rPID#1##110^^^^NNCHN$x##张$三"
    m = parse(raw.encode(), None, CHARSETS)
    assert m.segments[1].fields[3][0][0] == ["110^^^^NNCHN"]
    assert m.segments[1].fields[3][0][1] == ["x"]
    assert m.segments[1].fields[5][0] == [["张"], ["三"]]


def test_structure_errors() -> None:
    with pytest.raises(MessageError) as err:
        parse(b"PID|1\r", None, CHARSETS)
    assert err.value.code == "100"
    with pytest.raises(MessageError):
        parse((msh() + "\rabc|1").encode(), None, CHARSETS)


def test_acknowledgement_form() -> None:
    header = Header("LIS", "LAB^1^USCC", "GW", "JTYS", "R01", "C1", "P", "2.5.1", "UNICODE UTF-8")
    problem = Hl7Problem("OBX[2]-5: 'a|b' is not a number", Location("OBX", 2, 5), "102")
    segments = acknowledgement("AE", header, [problem]).split("\r")
    assert segments[0].startswith("MSH|^~\\&|GW|JTYS|LIS|LAB^1^USCC|")
    assert "|ACK^R01^ACK|" in segments[0] and segments[0].endswith("|UNICODE UTF-8")
    assert segments[1] == "MSA|AE|C1"
    assert (
        segments[2]
        == "ERR||OBX^2^5|102^Data type error^HL70357|E||||OBX[2]-5: 'a\\F\\b' is not a number"
    )
