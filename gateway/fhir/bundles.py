"""Assembling Bundles from stored bytes: resources are spliced in, never re-serialised."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.vocab import clock, json_io


@dataclass(slots=True)
class Entry:
    fields: dict[str, Any] = field(default_factory=dict)  # fullUrl, search, request, response
    resource: bytes | dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        head = json_io.dumps(self.fields)
        if self.resource is None or self.resource == b"":
            return head
        res = self.resource if isinstance(self.resource, bytes) else json_io.dumps(self.resource)
        sep = b"," if len(head) > 2 else b""
        # Keep fullUrl first, then resource, then the rest: the order the spec shows.
        return head[:-1] + sep + b'"resource":' + res + b"}"


def assemble(
    bundle_type: str,
    entries: list[Entry],
    *,
    total: int | None = None,
    links: list[tuple[str, str]] = (),  # type: ignore[assignment]
    bundle_id: str | None = None,
) -> bytes:
    head: dict[str, Any] = {"resourceType": "Bundle"}
    if bundle_id:
        head["id"] = bundle_id
    head["meta"] = {"lastUpdated": clock.to_instant(clock.now_us())}
    head["type"] = bundle_type
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    parts = [orjson.dumps(head)[:-1]]
    if entries:
        parts.append(b',"entry":[' + b",".join(e.to_bytes() for e in entries) + b"]")
    parts.append(b"}")
    return b"".join(parts)
