"""SMART scopes for backend services: v1 (`system/Patient.read`, `system/*.write`,
`system/Observation.*`) and v2 (`system/Patient.rs`, `system/*.cruds`).

A scope grants permissions on a resource type (or `*`): c create, r read (read, vread,
history), u update (and patch), d delete, s search. v1 `read` is `rs`, `write` is `cud`, `*`
is all five. Only `system/` scopes apply to backend services; v2 query constraints
(`system/Observation.rs?category=…`) are not granted (nothing would enforce them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PERMS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": PERMS}
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)$")


@dataclass(frozen=True, slots=True)
class Scope:
    resource_type: str  # a type or "*"
    perms: frozenset[str]

    def text(self) -> str:
        return f"system/{self.resource_type}.{''.join(p for p in PERMS if p in self.perms)}"


def parse(text: str) -> Scope | None:
    """One scope string, or None when it is not a backend-services scope we can grant."""
    m = _SCOPE.match(text)
    if not m:
        return None
    rtype, access = m.groups()
    if access in _V1:
        return Scope(rtype, frozenset(_V1[access]))
    if (
        access
        and all(c in PERMS for c in access)
        and list(access) == sorted(access, key=PERMS.index)
    ):
        return Scope(rtype, frozenset(access))
    return None


def parse_all(text: str | Iterable[str]) -> list[Scope]:
    items = text.split() if isinstance(text, str) else list(text)
    return [s for s in (parse(t) for t in items) if s is not None]


class Grants:
    """What a set of scopes allows: `allows("Patient", "r")`."""

    def __init__(self, scopes: Iterable[Scope]):
        self._by_type: dict[str, set[str]] = {}
        for s in scopes:
            self._by_type.setdefault(s.resource_type, set()).update(s.perms)

    def perms(self, resource_type: str) -> set[str]:
        return self._by_type.get(resource_type, set()) | self._by_type.get("*", set())

    def allows(self, resource_type: str, perm: str) -> bool:
        return perm in self.perms(resource_type)

    def any_type_allows(self, perm: str) -> bool:
        return any(perm in p for p in self._by_type.values())


def grant(requested: Iterable[Scope], allowed: Iterable[Scope]) -> list[Scope]:
    """The part of the requested scopes the allowed ones cover: a type's request gets the
    permissions allowed on that type (or on every type); a wildcard request gets each allowed
    scope narrowed to the permissions it asked for. Each type once, in request order."""
    allowed = list(allowed)
    may = Grants(allowed)
    out: dict[str, set[str]] = {}
    for s in requested:
        if s.resource_type == "*":
            for a in allowed:
                perms = s.perms & a.perms
                if perms:
                    out.setdefault(a.resource_type, set()).update(perms)
        else:
            perms = s.perms & may.perms(s.resource_type)
            if perms:
                out.setdefault(s.resource_type, set()).update(perms)
    return [Scope(t, frozenset(p)) for t, p in out.items()]
