"""Who is asking: carried by every request down to every repository call."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The principal behind a request. Access control (SMART scopes, per-organisation policy)
    reads it; the store records it in history (who wrote which version)."""

    principal: str = "anonymous"
    organization: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None

    @classmethod
    def system(cls) -> RequestContext:
        """The gateway itself (CLI, migrations, reindex)."""
        return cls(principal="system", scopes=frozenset({"system/*.*"}))
