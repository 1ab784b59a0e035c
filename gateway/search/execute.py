"""Run a SearchRequest: one page by keyset, the total, then the includes.

Two ways to a page, one cursor format (the sort-key values of the page's edge row):
- id-driven (type-level searches in id order with an indexed clause, the common case): the
  page's ids come from the first indexed clause's index table, other clauses filtering by id,
  and the page's resources are joined in the same statement. The indexes end in res_id, so a
  page of 20 among thousands of matches streams instead of sorting them (SearchSql.page_ids);
- resource-driven (everything else: _sort, system-level searches, only _id/_lastUpdated/
  :missing/:not): conditions over `resources` with sort keys read by subqueries.

Totals: exact when the first page holds every match; otherwise the default counts up to
`total_limit` matches and gives no total beyond it (a count of 100,000 index rows costs more
than the page itself); `_total=accurate` always counts, `_total=estimate` asks the planner.

Statements per search: the page (1), the total (0 or 1), one per include parameter and
:iterate round. Chains and _has are subqueries of the page statement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from gateway.search.include import run_includes
from gateway.search.paging import beyond, decode_cursor, encode_cursor, order_by, sort_keys
from gateway.search.sql import SearchSql
from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.store.tables import resources
from gateway.vocab.search_model import SearchRequest

DEFAULT_TOTAL_LIMIT = 10_000


@dataclass(slots=True)
class SearchPage:
    matches: list[Stored] = field(default_factory=list)
    included: list[Stored] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


class _Matches:
    """How to select, page and count the matches of one search."""

    def __init__(self, sql: SearchSql, sr: SearchRequest):
        self.sr = sr
        self.driven = sql.page_ids(sr)
        self.where = sql.where(sr) if self.driven is None else []
        self.keys = sort_keys(sr)

    def counting(self, limit: int | None) -> Any:
        """A select with one row per match (at most `limit`)."""
        if self.driven is not None:
            col, conds = self.driven
            q = select(col).where(*conds).group_by(col)
        else:
            q = select(resources.c.res_id).where(*self.where)
        return q.limit(limit) if limit is not None else q

    async def page(
        self, repo: Repository, cursor: list[Any] | None, backwards: bool, limit: int, offset: int
    ) -> list[tuple[Stored, list[Any]]]:
        if self.driven is None:
            conds = list(self.where)
            if cursor is not None:
                conds.append(beyond(self.keys, cursor, before=backwards))
            exprs = [k for k, _ in self.keys]
            return await repo.search_page(
                conds, exprs, order_by(self.keys, backwards), limit, offset
            )
        assert self.sr.res_type
        col, conds = self.driven
        conds = list(conds)
        if cursor is not None:
            conds.append(col < cursor[0] if backwards else col > cursor[0])
        ids = (
            select(col.label("res_id"))
            .where(*conds)
            .group_by(col)
            .order_by(col.desc() if backwards else col.asc())
            .limit(limit)
            .offset(offset)
            .subquery("page_ids")
        )
        found = await repo.search_page_ids(self.sr.res_type, ids, descending=backwards)
        return [(st, [st.res_id]) for st in found]


async def run_search(
    repo: Repository, sql: SearchSql, sr: SearchRequest, total_limit: int = DEFAULT_TOTAL_LIMIT
) -> SearchPage:
    sr.access = repo.ctx.access  # matches, totals, chains and _has: what the client may see
    m = _Matches(sql, sr)
    if sr.summary == "count":
        return SearchPage(total=await repo.count_rows(m.counting(None)))
    cursor: list[Any] | None = None
    direction = None
    if sr.cursor:
        direction, cursor = decode_cursor(sr.cursor, m.keys)
    backwards = direction == "b"
    offset = 0 if sr.cursor else sr.offset
    counting = _count_task(repo, m, sr, total_limit)
    rows = await m.page(repo, cursor, backwards, sr.count + 1, offset)
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
    counted = await counting if counting is not None else None  # few rows when not needed
    if not sr.cursor and sr.offset == 0 and not more:
        page.total = None if sr.total == "none" else len(rows)  # the page holds every match
    elif counting is not None:
        page.total = counted
    else:
        page.total = await _page_total(repo, m, sr, total_limit)
    if sr.includes and page.matches:
        page.included = await run_includes(repo, sr.includes, page.matches)
    return page


def _count_task(
    repo: Repository, m: _Matches, sr: SearchRequest, limit: int
) -> asyncio.Task[int | None] | None:
    """On a first page that will need a total, count while the page is read: on its own
    connection, the latency is the longer of the two rather than their sum. Not inside a
    transaction (one connection, one statement at a time)."""
    if sr.cursor or sr.total == "none" or repo.conn is not None:
        return None
    return asyncio.ensure_future(_page_total(repo, m, sr, limit))


async def _page_total(repo: Repository, m: _Matches, sr: SearchRequest, limit: int) -> int | None:
    mode = sr.total or ("default" if not sr.cursor else "none")
    if mode == "none":
        return None
    if mode == "estimate":
        return await repo.estimate_rows(m.counting(None))
    if mode == "accurate":
        return await repo.count_rows(m.counting(None))
    counted = await repo.count_rows(m.counting(limit + 1))
    return counted if counted <= limit else None


def _plain(values: list[Any]) -> list[Any]:
    """Key values as JSON scalars (bool → int, Decimal → float)."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, bool):
            out.append(int(v))
        elif isinstance(v, int | float | str) or v is None:
            out.append(v)
        else:
            out.append(float(v))
    return out
