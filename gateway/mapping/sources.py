"""Records from what regional systems export: JSON (one record or an array of them) and CSV
with a Chinese header row, in UTF-8 (with or without a byte-order mark) or GB18030.

The charset of a CSV is the one named (the `charset` of its content type, or a parameter);
otherwise UTF-8 when the bytes are UTF-8, else GB18030 (a superset of GBK and GB2312, what
Chinese spreadsheet software writes). Rows that are entirely empty are skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

# A key no header can have: a CSV row that does not fit its header says so under it.
ROW_ERROR = "$row-error"


class SourceError(ValueError):
    """A body that holds no records in a supported form; the message says why."""


def media_kind(content_type: str | None, body: bytes) -> str:
    """'json' or 'csv', from the content type, else from the first character."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media.endswith("json"):
        return "json"
    if media in ("text/csv", "application/csv", "text/comma-separated-values"):
        return "csv"
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "json" if head in (b"{", b"[") else "csv"


def charset_of(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def read_records(body: bytes, kind: str, charset: str | None = None) -> list[Any]:
    if kind == "json":
        return _json(body)
    return _csv(decode(body, charset))


def read_file(path: Path, charset: str | None = None) -> list[Any]:
    body = path.read_bytes()
    kind = "json" if path.suffix.lower() == ".json" else media_kind(None, body)
    return read_records(body, kind, charset)


def decode(body: bytes, charset: str | None) -> str:
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise SourceError(f"unknown charset '{charset}'") from None
        try:
            return body.decode(charset).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise SourceError(f"the body is not {charset}: byte {exc.start}") from None
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise SourceError(f"the body is neither UTF-8 nor GB18030 (byte {exc.start})") from None


def _json(body: bytes) -> list[Any]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SourceError("JSON must be UTF-8") from None
    except ValueError as exc:
        raise SourceError(f"not valid JSON: {exc}") from None
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return doc
    raise SourceError("JSON records are an object or an array of objects")


def _csv(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise SourceError(f"not valid CSV: {exc}") from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    if len(set(names)) != len(names):
        raise SourceError("the CSV header names a column twice")
    rows = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            record = dict(zip(names, row, strict=False))
            if any(cell.strip() for cell in row[len(names) :]):
                # this row's problem, not the file's: the other rows still count
                record[ROW_ERROR] = f"{len(row)} cells, the header has {len(names)}"
            rows.append(record)
    except csv.Error as exc:
        raise SourceError(f"not valid CSV (line {reader.line_num}): {exc}") from None
    return rows
