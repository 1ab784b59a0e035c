"""Access for one request: the token's scopes and the role's policy, as the `Access` the core
and the store consult (gateway.vocab.context).

Scopes first: an interaction the token's scopes do not cover is a 403 (the client asked more
than it was granted). Then the policy: a resource the client may not see is absent (404 on a
read, left out of searches, includes, histories); a write of a type the role may not write,
or of a resource it may not see before or after the write, is a 403.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.access.audit import AuditSlot
from gateway.access.policy import Policy
from gateway.access.visibility import Parse, Principal, Visibility
from gateway.auth import scopes
from gateway.search.sql import SearchSql
from gateway.store.store import Store
from gateway.vocab import outcomes
from gateway.vocab.context import RequestContext

# interaction (router route names, $operations) → the SMART permission it needs
_PERMS = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "$everything": "r",
}
_WRITES = {"create": "c", "update": "u", "delete": "d"}
# Written by the gateway alone: the audit trail is append-only, provenance is the gateway's.
GATEWAY_ONLY = frozenset({"AuditEvent"})
_DIVISION_EXT = "https://fhir.jtys.cn/StructureDefinition/cn-admin-division"
_DIVISION_TTL = 60.0
_ACCESS_TTL = 60.0


class ClientAccess:
    """One client's access for one request (gateway.vocab.context.Access)."""

    def __init__(
        self, policy: Policy, principal: Principal, granted: list[str], parse: Parse, sql: SearchSql
    ):
        self.role = policy.role(principal.role)
        self.grants = scopes.Grants(scopes.parse_all(granted))
        self.visibility = Visibility(
            policy,
            self.role,
            principal,
            parse,
            sql,
            readable=lambda t: self.grants.allows(t, "r") or self.grants.allows(t, "s"),
        )
        # What the role's policy reaches, whatever the token may read: the store checks a
        # write against it (before and after), so a write-only feed can write.
        self.reach = Visibility(policy, self.role, principal, parse, sql, writing=True)

    def allow(self, interaction: str, res_type: str | None) -> None:
        perm = _PERMS.get(interaction)
        if perm is None:
            return
        ok = self.grants.allows(res_type, perm) if res_type else self.grants.any_type_allows(perm)
        if not ok:
            what = f"{interaction} on {res_type}" if res_type else interaction
            raise outcomes.forbidden(f"The access token's scopes do not allow {what}")
        if perm in "cud" and res_type:
            self.may_write(res_type, {"c": "create", "u": "update", "d": "delete"}[perm])

    def condition(
        self,
        res_type: str | None,
        type_col: Any,
        id_col: Any,
        types: list[str] | None = None,
        *,
        writing: bool = False,
    ) -> Any:
        seen = self.reach if writing else self.visibility
        return seen.condition(res_type, type_col, id_col, types)

    def may_write(self, res_type: str, action: str) -> None:
        if not self.grants.allows(res_type, _WRITES[action]):
            raise outcomes.forbidden(
                f"The access token's scopes do not allow {action} of {res_type}"
            )
        write = self.role.write
        if res_type in GATEWAY_ONLY or (write != "all" and res_type not in write):
            raise outcomes.forbidden(f"This client's role may not {action} {res_type} resources")


class AccessControl:
    """Built once at start-up: the policy and the search machinery that evaluates it."""

    def __init__(self, policy: Policy, parse: Parse, sql: SearchSql, store: Store):
        self.policy = policy
        self.parse = parse
        self.sql = sql
        self.store = store
        self._divisions: dict[str, tuple[float, str | None]] = {}
        # One ClientAccess per principal for a minute: its SQL is built once and reused (the
        # same statement objects let SQLAlchemy and PostgreSQL reuse their work); the
        # policies' time windows ({now-30d}) are therefore exact to the minute.
        self._access: dict[tuple[Any, ...], tuple[float, ClientAccess]] = {}

    async def context(
        self,
        client_id: str,
        organization: str | None,
        role: str,
        granted: tuple[str, ...],
        request_id: str | None,
    ) -> RequestContext:
        if role not in self.policy.roles:
            raise outcomes.forbidden(f"No access policy for the role {role!r}")
        division = await self._division(organization)
        key = (organization, role, division, granted)
        now = time.monotonic()
        hit = self._access.get(key)
        if hit is not None and now - hit[0] < _ACCESS_TTL:
            access = hit[1]
        else:
            principal = Principal(organization, role, division)
            access = ClientAccess(self.policy, principal, list(granted), self.parse, self.sql)
            if len(self._access) >= 1000:
                self._access.clear()
            self._access[key] = (now, access)
        return RequestContext(
            principal=client_id,
            organization=organization,
            scopes=frozenset(granted),
            request_id=request_id,
            role=role,
            access=access,
            audit=AuditSlot(),
        )

    async def _division(self, organization: str | None) -> str | None:
        """The GB/T 2260 code of the organisation's address (for {organization.division})."""
        if not organization:
            return None
        now = time.monotonic()
        hit = self._divisions.get(organization)
        if hit is not None and now - hit[0] < _DIVISION_TTL:
            return hit[1]
        stored = await self.store.repository(RequestContext.system()).read(
            *organization.split("/", 1)
        )
        code = None
        if stored is not None and not stored.deleted:
            for address in orjson.loads(stored.content).get("address", []):
                for ext in address.get("extension", []) if isinstance(address, dict) else []:
                    if isinstance(ext, dict) and ext.get("url") == _DIVISION_EXT:
                        code = ext.get("valueCode") or code
        self._divisions[organization] = (now, code)
        return code
