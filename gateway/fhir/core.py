"""FhirCore: the services every handler shares, and the route table (data the
CapabilityStatement is generated from)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gateway.fhir.interactions import (
    bundle,
    capabilities,
    create,
    delete,
    history,
    patch,
    read,
    search,
    update,
)
from gateway.fhir.operations import Operation
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.router import Route, Router
from gateway.fhir.validation_pool import ValidationPool
from gateway.fhir.write_check import WriteCheck
from gateway.search.execute import SearchPage, run_search
from gateway.search.paging import order_by, sort_keys
from gateway.search.request import LENIENT, STRICT, parse_search
from gateway.search.sql import SearchSql
from gateway.settings import Settings
from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.store.store import Store
from gateway.vocab import clock, outcomes
from gateway.vocab.definitions import r4_resource_types
from gateway.vocab.search_model import SearchRequest

ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "metadata"): Route("capabilities", capabilities.capabilities),
    ("POST", ""): Route("transaction", bundle.bundle),
    ("GET", ""): Route("search-system", search.search_system),
    ("POST", "_search"): Route("search-system", search.search_system),
    ("GET", "_history"): Route("history-system", history.history),
    ("GET", "T"): Route("search-type", search.search_type),
    ("POST", "T/_search"): Route("search-type", search.search_type),
    ("POST", "T"): Route("create", create.create),
    ("PUT", "T"): Route("update", update.conditional_update),
    ("PATCH", "T"): Route("patch", patch.conditional_patch),
    ("DELETE", "T"): Route("delete", delete.conditional_delete),
    ("GET", "T/_history"): Route("history-type", history.history),
    ("GET", "T/id"): Route("read", read.read),
    ("PUT", "T/id"): Route("update", update.update),
    ("PATCH", "T/id"): Route("patch", patch.patch),
    ("DELETE", "T/id"): Route("delete", delete.delete),
    ("GET", "T/id/_history"): Route("history-instance", history.history),
    ("GET", "T/id/_history/v"): Route("vread", read.vread),
}


@dataclass
class FhirCore:
    settings: Settings
    store: Store
    registry: Any  # gateway.search.registry.SearchParamRegistry
    operations: dict[str, Operation] = field(default_factory=dict)
    searchable_types: frozenset[str] = frozenset(
        {"token", "string", "date", "number", "quantity", "reference", "uri"}
    )

    def __post_init__(self) -> None:
        self.router = Router(dict(ROUTES), self.operations)
        self.resource_types = r4_resource_types()
        self.started_at = clock.now_us()
        self.search_sql = SearchSql(self._normaliser())
        s = self.settings
        self.write_check = WriteCheck(
            s.profile_validation,
            s.strict_profiles,
            s.profiles_dir,
            s.core_validation,
            s.unknown_extensions,
            s.security_checks,
        )
        pool = s.validation_workers
        if pool is None:  # the machine's cores, shared by the server's worker processes
            pool = max(1, (os.cpu_count() or 1) // max(1, s.workers))
        self.validation = ValidationPool(self.write_check, pool)

    def _normaliser(self):  # type: ignore[no-untyped-def]
        from gateway.search.values import normalize_string

        return normalize_string

    async def handle(self, req: FhirRequest) -> FhirResponse:
        repo = self.store.repository(req.context)
        return await self.router.dispatch(self, req, repo)

    # --- search, shared by the search interaction and conditional operations -------------
    def parse_search(
        self,
        res_type: str | None,
        query: list[tuple[str, str]],
        handling: str = STRICT,
        types: list[str] | None = None,
    ) -> SearchRequest:
        """A query parsed against the registry; `handling` as gateway.search.request says
        (conditional operations stay strict: an ignored parameter would widen their match)."""
        s = self.settings
        sr = parse_search(
            self.registry,
            res_type,
            query,
            handling=handling,
            default_count=s.default_page_size,
            max_count=s.max_page_size,
            types=types,
        )
        if handling == LENIENT:
            self.search_sql.sift(sr)
        return sr

    async def search(self, repo: Repository, sr: SearchRequest) -> SearchPage:
        """One page of matches (keyset-paged), the total, and what _include/_revinclude add."""
        return await run_search(repo, self.search_sql, sr, self.settings.search_total_limit)

    @staticmethod
    def _order(sr: SearchRequest) -> list[Any]:
        return order_by(sort_keys(sr))

    async def conditional_match(
        self, repo: Repository, res_type: str, query: str, *, lock: bool = False
    ) -> list[Stored]:
        """Resources matching a conditional create/update/delete/reference query (at most 2:
        enough to tell none, one and many). With lock, identical conditional writes serialise."""
        if "?" in query:  # accept "Patient?identifier=…" as well as "identifier=…"
            query = query.split("?", 1)[1]
        params = parse_qsl(query, keep_blank_values=True)
        sr = self.parse_search(res_type, params)
        if lock:
            await repo.lock(f"{res_type}?{sorted(params)}")
        # Matched over every resource, so a conditional create never duplicates one the client
        # cannot see; but a match outside its access is refused, never revealed.
        found = await repo.search_rows(self.search_sql.where(sr), self._order(sr), 2)
        keys = [(st.res_type, st.res_id) for st in found]
        if len(await repo.visible(keys)) < len(keys):
            raise outcomes.forbidden(
                f"The condition matches a {res_type} outside this client's access"
            )
        return found
