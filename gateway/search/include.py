"""_include / _revinclude (with :iterate and `*`): one SQL statement per include parameter and
round, whatever the page size — never one per resource.

Forward: resources whose (type, id) is the target of a reference row of the page's resources.
Reverse: resources with a reference row pointing at one of the page's resources. `:iterate`
repeats on what the previous round added, at most MAX_ROUNDS rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, tuple_

from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.store.tables import idx_reference, resources
from gateway.vocab.search_model import Include

R = resources.c
REF = idx_reference.c
MAX_ROUNDS = 4
MAX_INCLUDED = 5000


def _ids_by_type(found: Iterable[Stored]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for st in found:
        out.setdefault(st.res_type, []).append(st.res_id)
    return out


def _pointing_from(inc: Include, by_type: dict[str, list[str]]) -> ColumnElement[bool] | None:
    """Reference rows of the given resources that an _include follows."""
    types = [inc.source] if inc.source != "*" else list(by_type)
    conds = [and_(REF.res_type == t, REF.res_id.in_(by_type[t])) for t in types if t in by_type]
    if not conds:
        return None
    cond = or_(*conds)
    if inc.param:
        cond = and_(cond, REF.param == inc.param)
    if inc.target:
        cond = and_(cond, REF.target_type == inc.target)
    return cond


def _pointing_to(inc: Include, by_type: dict[str, list[str]]) -> ColumnElement[bool] | None:
    """Reference rows that point at the given resources (an _revinclude)."""
    types = [inc.target] if inc.target else list(by_type)
    conds = [
        and_(REF.target_type == t, REF.target_id.in_(by_type[t])) for t in types if t in by_type
    ]
    if not conds:
        return None
    cond = or_(*conds)
    if inc.source != "*":
        cond = and_(cond, REF.res_type == inc.source)
    if inc.param:
        cond = and_(cond, REF.param == inc.param)
    return cond


def include_where(inc: Include, found: Iterable[Stored]) -> list[Any] | None:
    by_type = _ids_by_type(found)
    if inc.reverse:
        refs = _pointing_to(inc, by_type)
        if refs is None:
            return None
        pairs = select(REF.res_type, REF.res_id).where(refs)
    else:
        refs = _pointing_from(inc, by_type)
        if refs is None:
            return None
        pairs = select(REF.target_type, REF.target_id).where(refs, REF.target_id.is_not(None))
    return [R.deleted.is_(False), tuple_(R.res_type, R.res_id).in_(pairs)]


async def run_includes(
    repo: Repository, includes: list[Include], matches: list[Stored]
) -> list[Stored]:
    """Resources the includes add to a page (none that is already a match), in round order."""
    seen = {(st.res_type, st.res_id) for st in matches}
    added: list[Stored] = []
    frontier = matches
    for round_no in range(MAX_ROUNDS):
        specs = [i for i in includes if round_no == 0 or i.iterate]
        if not specs or not frontier:
            break
        fresh: list[Stored] = []
        for inc in specs:
            where = include_where(inc, frontier)
            if where is None:
                continue
            for st in await repo.search_resources(where, MAX_INCLUDED):
                key = (st.res_type, st.res_id)
                if key not in seen:
                    seen.add(key)
                    fresh.append(st)
        added.extend(fresh)
        frontier = fresh
        if len(added) >= MAX_INCLUDED:
            break
    return added
