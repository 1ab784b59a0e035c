"""What the rules read from the store inside the write's transaction: resources by reference
(literal, or conditional `Type?identifier=…` before the transaction resolves it), searches,
counts, the division an organisation sits in, and so the pack that governs it.

Reads here see every resource, whatever the writing client may see: a second contract at an
institution the client cannot read must still be found.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import and_, func, select

from gateway.policy.pack import Packs, PolicyPack
from gateway.search.request import parse_search
from gateway.search.sql import SearchSql
from gateway.store.repository import Repository
from gateway.store.tables import idx_token, resources
from gateway.vocab.context import RequestContext

DIVISION_EXT = "https://fhir.jtys.cn/StructureDefinition/cn-admin-division"


class TransactionReads:
    """References resolved for the rules, shared by every write of one transaction: a bundle
    of results from one lab reads the lab's Organization once, not once per result. A type
    the transaction writes is never served from here after its first write (nor cached
    again), so the rules still see the transaction's own changes as the store shows them."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any] | None] = {}
        self.written: set[str] = set()

    def wrote(self, res_type: str) -> None:
        if res_type in self.written:
            return
        self.written.add(res_type)
        for key in [k for k in self.found if _type_of(k) == res_type]:
            del self.found[key]

    def keeps(self, text: str) -> bool:
        return _type_of(text) not in self.written


def _type_of(reference: str) -> str:
    path = reference.partition("?")[0]
    parts = path.split("/")
    return path if len(parts) == 1 else parts[-2]


class Lookup:
    def __init__(
        self,
        tx: Repository,
        registry: Any,
        sql: SearchSql,
        packs: Packs,
        reads: TransactionReads | None = None,
    ):
        # Same connection (so the transaction's own writes are seen), no access restriction.
        self.repo = Repository(tx.store, RequestContext.system(), tx.conn)
        self.registry = registry
        self.sql = sql
        self.packs = packs
        self._reads = reads or TransactionReads()
        self._cache = self._reads.found

    async def lock(self, key: str) -> None:
        await self.repo.lock(key)

    def where(self, res_type: str, query: list[tuple[str, str]]) -> list[Any]:
        sr = parse_search(self.registry, res_type, query, max_count=10_000)
        return self.sql.where(sr)

    async def search(
        self, res_type: str, query: list[tuple[str, str]], limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = await self.repo.search_rows(self.where(res_type, query), [resources.c.res_id], limit)
        return [orjson.loads(st.content) for st in rows if not st.deleted]

    async def count(self, res_type: str, query: list[tuple[str, str]]) -> int:
        q = select(resources.c.res_id).where(and_(*self.where(res_type, query)))
        return await self.repo.count_rows(q)

    async def count_distinct_identifier(
        self, res_type: str, query: list[tuple[str, str]], system: str
    ) -> int:
        """Matches counted once per value of their `system` identifier (those without one,
        once each): households among contracts, say."""
        ident = (
            select(idx_token.c.res_id, idx_token.c.code)
            .where(
                idx_token.c.res_type == res_type,
                idx_token.c.param == "identifier",
                idx_token.c.system == system,
            )
            .subquery()
        )
        key = func.coalesce(ident.c.code, resources.c.res_id)
        q = (
            select(key)
            .select_from(resources.outerjoin(ident, ident.c.res_id == resources.c.res_id))
            .where(and_(*self.where(res_type, query)))
            .distinct()
        )
        return await self.repo.count_rows(q)

    async def resolve(self, ref: Any, expected: str | None = None) -> dict[str, Any] | None:
        """The resource a Reference (or reference string) points to, when it is in the store."""
        text = ref.get("reference") if isinstance(ref, dict) else ref
        if not isinstance(text, str) or not text:
            return None
        if text in self._cache:
            return self._cache[text]
        found: dict[str, Any] | None = None
        rtype, sep, query = text.partition("?")
        if sep:
            if expected in (None, rtype):
                matches = await self.search(rtype, parse_qsl(query, keep_blank_values=True), 2)
                found = matches[0] if len(matches) == 1 else None
        else:
            parts = text.split("/")
            if len(parts) >= 2 and expected in (None, parts[-2]):
                st = await self.repo.read(parts[-2], parts[-1])
                found = orjson.loads(st.content) if st and not st.deleted else None
        if self._reads.keeps(text):
            self._cache[text] = found
        return found

    async def reference_of(self, ref: Any) -> str | None:
        """`Type/id` for a Reference, conditional ones resolved."""
        text = ref.get("reference") if isinstance(ref, dict) else ref
        if isinstance(text, str) and "?" not in text and "/" in text:
            parts = text.split("/")
            return f"{parts[-2]}/{parts[-1]}"
        found = await self.resolve(ref)
        return f"{found['resourceType']}/{found['id']}" if found else None

    async def division_of(self, org_ref: Any) -> str | None:
        org = await self.resolve(org_ref, "Organization")
        if org is None:
            return None
        for address in org.get("address") or []:
            for ext in address.get("extension") or []:
                if ext.get("url") == DIVISION_EXT and isinstance(ext.get("valueCode"), str):
                    return str(ext["valueCode"])
        return None

    async def pack_of(self, org_ref: Any) -> tuple[PolicyPack, str | None]:
        division = await self.division_of(org_ref)
        return self.packs.for_division(division), division
