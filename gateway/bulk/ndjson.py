"""NDJSON lines and transaction bundles made into writes that are safe to repeat.

A line with an id becomes `PUT Type/id` (update-as-create): importing the same file again
updates what the first run created instead of duplicating it. A line without an id can only be
created (`POST`); a re-run creates it again, so such lines are counted apart. The resource's
bytes go into the batch as they were read (decimals keep their text).

A transaction bundle's `POST` entries with a `urn:uuid:` fullUrl (Synthea's) become
`PUT Type/<uuid>`: the uuid is a valid id, every link to the fullUrl is rewritten to it by the
transaction as usual, and a second run updates the same resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass
class Line:
    number: int  # 1-based line number in its file
    data: bytes
    res_type: str | None = None
    res_id: str | None = None
    problem: str | None = None  # why it cannot be sent (malformed JSON, wrong type…)


def read_line(number: int, raw: bytes, expected_type: str | None) -> Line | None:
    data = raw.strip()
    if not data:
        return None  # blank lines (a trailing newline) are no records
    line = Line(number, data)
    try:
        head = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line.problem = f"malformed JSON: {exc}"
        return line
    if not isinstance(head, dict) or not isinstance(head.get("resourceType"), str):
        line.problem = "not a FHIR resource (no resourceType)"
        return line
    line.res_type = head["resourceType"]
    if expected_type and line.res_type != expected_type:
        line.problem = f"a {line.res_type} in a file of {expected_type} resources"
        return line
    rid = head.get("id")
    if isinstance(rid, str) and _ID.fullmatch(rid):
        line.res_id = rid
    elif rid is not None:
        line.problem = f"invalid id {rid!r}"
    return line


def batch(lines: list[Line]) -> bytes:
    """A batch Bundle of the lines' writes (each entry succeeds or fails alone)."""
    entries = []
    for line in lines:
        request: dict[str, Any]
        if line.res_id:
            request = {"method": "PUT", "url": f"{line.res_type}/{line.res_id}"}
        else:
            request = {"method": "POST", "url": line.res_type}
        entries.append(b'{"request":' + orjson.dumps(request) + b',"resource":' + line.data + b"}")
    return b'{"resourceType":"Bundle","type":"batch","entry":[' + b",".join(entries) + b"]}"


def entry_results(response: dict[str, Any]) -> list[tuple[int, dict[str, Any] | None]]:
    """(status, OperationOutcome or None) of each entry of a batch-response."""
    out = []
    for entry in response.get("entry") or []:
        resp = entry.get("response") or {}
        status = int(str(resp.get("status", "500")).split()[0])
        out.append((status, resp.get("outcome")))
    return out


def repeatable_transaction(bundle: dict[str, Any]) -> int:
    """Turn a transaction's `POST` entries with `urn:uuid:` fullUrls into `PUT`s on the uuid
    (in place); how many were turned."""
    turned = 0
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        request, resource = entry.get("request"), entry.get("resource")
        full_url = entry.get("fullUrl")
        if not (isinstance(request, dict) and isinstance(resource, dict)):
            continue
        if request.get("method") != "POST" or request.get("ifNoneExist"):
            continue
        if not (isinstance(full_url, str) and full_url.startswith("urn:uuid:")):
            continue
        rid = full_url.removeprefix("urn:uuid:")
        res_type = resource.get("resourceType")
        if not _ID.fullmatch(rid) or not isinstance(res_type, str):
            continue
        resource["id"] = rid
        entry["request"] = {**request, "method": "PUT", "url": f"{res_type}/{rid}"}
        turned += 1
    return turned
