"""Who is asking: carried by every request down to every repository call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Access(Protocol):
    """What one authenticated client may see and do (gateway.access builds it from the token
    and the access policies). Every layer below the edge consults it; none needs to know how
    it is decided."""

    def allow(self, interaction: str, res_type: str | None) -> None:
        """Raise a 403 OperationOutcomeError unless the client may attempt `interaction`
        (read, vread, search-type, create, update, patch, delete, history-…, $operation) on
        `res_type` at all (its scopes and its role's policy)."""

    def condition(
        self,
        res_type: str | None,
        type_col: Any,
        id_col: Any,
        types: list[str] | None = None,
        *,
        writing: bool = False,
    ) -> Any:
        """A SQL condition on (type_col, id_col) that holds for the stored resources the client
        may see; None when it may see every one. `res_type` None: rows of any type (or of
        `types`). `writing`: what its role's policy reaches, whatever its token's read scopes
        (a write-only feed writes what it could not read back)."""

    def may_write(self, res_type: str, action: str) -> None:
        """Raise a 403 unless the client may `action` (create | update | delete) resources of
        `res_type`; the store also checks that the resource is one it may see, before and
        after the write."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The principal behind a request. Access control (SMART scopes, per-organisation policy)
    reads it; the store records it in history (who wrote which version).

    `access` None: nothing is restricted (authentication off, or the gateway itself)."""

    principal: str = "anonymous"
    organization: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None
    role: str | None = None
    access: Access | None = None
    # What the request did, for its AuditEvent (gateway.access.audit.AuditSlot; mutable: the
    # router and the write transaction fill it in). None: nothing is audited.
    audit: Any = None

    @classmethod
    def system(cls) -> RequestContext:
        """The gateway itself (CLI, migrations, reindex)."""
        return cls(principal="system", scopes=frozenset({"system/*.*"}))
