"""Values the store hands out and takes in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.vocab import clock


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of a resource as stored: its JSON bytes are served as they are."""

    res_type: str
    res_id: str
    version: int
    last_updated: int  # µs since epoch, UTC
    deleted: bool
    content: bytes
    method: str = "PUT"  # how this version was made (history)
    # Set by writes: True when this version brought the resource (back) into existence.
    created: bool = False

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def last_modified(self) -> str:
        return clock.to_http_date(self.last_updated)

    @property
    def last_updated_instant(self) -> str:
        return clock.to_instant(self.last_updated)

    @property
    def ref(self) -> str:
        return f"{self.res_type}/{self.res_id}"


@dataclass(slots=True)
class Write:
    """One change to apply inside a transaction.

    resource is None for a delete. expected_version enforces If-Match. create_only makes the
    write fail if the id already exists (server-assigned ids never collide; this guards it).
    """

    res_type: str
    res_id: str
    resource: dict[str, Any] | None
    method: str  # POST | PUT | PATCH | DELETE
    expected_version: int | Literal["*"] | None = None
    create_only: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """A committed change, published after commit (outbox → bus)."""

    res_type: str
    res_id: str
    version: int
    action: str  # create | update | delete
    principal: str | None = None
