"""Records from JSON and CSV bodies: UTF-8 (with or without BOM) and GB18030."""

from __future__ import annotations

import pytest

from gateway.mapping.record import read_record
from gateway.mapping.registry import mappings
from gateway.mapping.sources import SourceError, charset_of, media_kind, read_records

CSV = "姓名,性别,证件号码\r\n王秀英,女,410102194803120245\r\n,,\r\n周伟,男,410102197005060130\r\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_charset_detected(encoding):
    rows = read_records(CSV.encode(encoding), "csv")
    assert rows == [
        {"姓名": "王秀英", "性别": "女", "证件号码": "410102194803120245"},
        {"姓名": "周伟", "性别": "男", "证件号码": "410102197005060130"},
    ]


def test_csv_charset_named():
    body = CSV.encode("gb18030")
    assert read_records(body, "csv", "GB18030")[0]["姓名"] == "王秀英"
    with pytest.raises(SourceError, match="not utf-8"):
        read_records(body, "csv", "utf-8")
    with pytest.raises(SourceError, match="unknown charset"):
        read_records(body, "csv", "klingon")


def test_a_row_longer_than_its_header_is_that_row_problem():
    rows = read_records("姓名,性别\r\n王,女,多余\r\n周,男\r\n".encode(), "csv")
    spec = mappings()["resident"]
    _, problems = read_record(spec, rows[0])
    assert [p.message for p in problems] == [
        "the row does not fit the header: 3 cells, the header has 2"
    ]
    assert rows[1] == {"姓名": "周", "性别": "男"}


def test_json_one_record_or_many():
    assert read_records('{"姓名": "王"}'.encode(), "json") == [{"姓名": "王"}]
    assert read_records('[{"姓名": "王"}, {"姓名": "周"}]'.encode(), "json")[1] == {"姓名": "周"}
    with pytest.raises(SourceError):
        read_records(b'"text"', "json")
    with pytest.raises(SourceError):
        read_records(b"[{", "json")


def test_kind_from_content_type_or_content():
    assert media_kind("text/csv; charset=gb18030", b"{") == "csv"
    assert media_kind("application/json", b"a,b") == "json"
    assert media_kind(None, b"\xef\xbb\xbf [") == "json"
    assert media_kind(None, "姓名,性别".encode()) == "csv"
    assert charset_of('text/csv; charset="GB18030"') == "GB18030"
