"""Run a SearchRequest: one page by keyset, the total, then the includes.

Statements per search: the page (1), the total (0 or 1: skipped when the first page holds every
match, or with _total=none), one per include parameter and :iterate round. Chains and _has
are subqueries of the page statement. See gateway/search/paging.py for the paging choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.fhir.search_request import SearchRequest
from gateway.search.include import run_includes
from gateway.search.paging import beyond, decode_cursor, encode_cursor, order_by, sort_keys
from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.store.search_sql import SearchSql


@dataclass(slots=True)
class SearchPage:
    matches: list[Stored] = field(default_factory=list)
    included: list[Stored] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


async def run_search(repo: Repository, sql: SearchSql, sr: SearchRequest) -> SearchPage:
    where = sql.where(sr)
    if sr.summary == "count":
        return SearchPage(total=await _total(repo, where, "accurate"))
    keys = sort_keys(sr)
    exprs = [k for k, _ in keys]
    conds: list[Any] = list(where)
    direction = None
    if sr.cursor:
        direction, values = decode_cursor(sr.cursor, len(keys))
        conds.append(beyond(keys, values, before=direction == "b"))
    backwards = direction == "b"
    offset = 0 if sr.cursor else sr.offset
    rows = await repo.search_page(conds, exprs, order_by(keys, backwards), sr.count + 1, offset)
    more = len(rows) > sr.count
    rows = rows[: sr.count]
    if backwards:
        rows.reverse()
    page = SearchPage(matches=[st for st, _ in rows])
    if rows:
        first, last = rows[0][1], rows[-1][1]
        later = more if not backwards else True
        earlier = (bool(sr.cursor) or offset > 0) if not backwards else more
        page.next_cursor = encode_cursor("a", _plain(last)) if later else None
        page.prev_cursor = encode_cursor("b", _plain(first)) if earlier else None
    page.total = await _page_total(repo, where, sr, len(rows), more)
    if sr.includes and page.matches:
        page.included = await run_includes(repo, sr.includes, page.matches)
    return page


async def _page_total(
    repo: Repository, where: list[Any], sr: SearchRequest, n: int, more: bool
) -> int | None:
    mode = sr.total or ("accurate" if not sr.cursor else "none")
    if mode == "none":
        return None
    if not sr.cursor and sr.offset == 0 and not more:
        return n  # the first page holds every match
    return await _total(repo, where, mode)


async def _total(repo: Repository, where: list[Any], mode: str) -> int:
    if mode == "estimate":
        return await repo.search_estimate(where)
    return await repo.search_count(where)


def _plain(values: list[Any]) -> list[Any]:
    """Key values as JSON scalars (bool → int, Decimal → float)."""
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append(int(v))
        elif isinstance(v, int | float | str) or v is None:
            out.append(v)
        else:
            out.append(float(v))
    return out
