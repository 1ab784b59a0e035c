"""SearchRequest → SQL conditions over the index tables. One subquery per AND clause; OR inside.

Semantics follow FHIR R4 search (§3.1.1): token system|code forms, string starts-with on the
normalised value, date ranges by prefix, reference by type/id, URL or identifier, :missing.
Chains and reverse chains (_has) nest id subqueries, so a whole search stays one statement:
``subject:Patient.identifier=x`` → reference rows whose target id is in the ids of Patients
with that identifier; ``_has:Observation:patient:code=y`` → the target ids of Observations'
``patient`` references, restricted to Observations with that code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    exists,
    literal,
    not_,
    or_,
    select,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BooleanClauseList

from gateway.search.cardinality import one_date_row
from gateway.search.composite import component_code
from gateway.search.position import KM_PER_DEGREE, parse_near
from gateway.search.sql_values import ValueConditions, unescaped
from gateway.store.tables import INDEX_TABLES, idx_number, idx_reference, resources
from gateway.vocab import outcomes
from gateway.vocab.search_model import Clause, SearchRequest

Normaliser = Callable[[str], str]

# SQLite parses `a OR b OR …` into a tree as deep as the list is long and refuses depth 1000:
# long OR lists are nested in parenthesised chunks (depth ~ 2·√n).
_OR_CHUNK = 64


def any_of(conds: Iterable[ColumnElement[bool]]) -> ColumnElement[bool]:
    items = list(conds)
    if len(items) <= _OR_CHUNK:
        return or_(*items)
    step = max(_OR_CHUNK, math.isqrt(len(items)) + 1)
    groups = [or_(*items[i : i + step]).self_group() for i in range(0, len(items), step)]
    # or_() would flatten the groups back into one list.
    return BooleanClauseList._construct_raw(operators.or_, groups)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OneRow:
    """Clauses on one date parameter that all hold of the resource's one index row."""

    clauses: tuple[Clause, ...]


R = resources.c


class SearchSql:
    def __init__(self, normalise: Normaliser, base_url: str = ""):
        self.values = ValueConditions(normalise, base_url)

    def where(self, sr: SearchRequest) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [R.deleted.is_(False)]
        access = sr.access
        if access is not None:
            seen = access.condition(sr.res_type, R.res_type, R.res_id, sr.types or None)
            if seen is not None:
                conds.append(seen)
        if sr.res_type:
            conds.append(R.res_type == sr.res_type)
            conds.extend(
                self._at(c, self._cond_item, sr.res_type, c, access)
                for c in self._grouped(sr.res_type, sr.clauses)
            )
        elif sr.types:
            conds.append(
                or_(
                    *(
                        and_(
                            R.res_type == t,
                            *(
                                self._at(c, self.cond, t, c, access)
                                for c in sr.type_clauses.get(t, ())
                            ),
                        )
                        for t in sr.types
                    )
                )
            )
        else:
            conds.extend(self._at(c, self.system_cond, c) for c in sr.clauses)
        return conds

    def sift(self, sr: SearchRequest) -> None:
        """`Prefer: handling=lenient`: drop the clauses whose values cannot be searched
        (malformed date, unsupported modifier…), each reported as a warning (R4 search: the
        server ignores what it cannot use and says so in the Bundle's outcome)."""

        def usable(res_type: str | None, c: Clause) -> bool:
            try:
                if res_type:
                    self._at(c, self.cond, res_type, c)
                else:
                    self._at(c, self.system_cond, c)
            except outcomes.OperationOutcomeError as err:
                sr.warnings.extend(replace(i, severity="warning") for i in err.issues)
                return False
            return True

        if sr.types and not sr.res_type:
            before = {c.pos for cs in sr.type_clauses.values() for c in cs}
            for t, clauses in sr.type_clauses.items():
                sr.type_clauses[t] = [c for c in clauses if usable(t, c)]
            after = {c.pos for cs in sr.type_clauses.values() for c in cs}
        else:
            before = {c.pos for c in sr.clauses}
            sr.clauses = [c for c in sr.clauses if usable(sr.res_type, c)]
            after = {c.pos for c in sr.clauses}
        # Dropped for every type: left out of the links.
        sr.ignored.update(p for p in before - after if p is not None)

    # --- the id-driven page: one clause's index rows, in id order --------------------------
    def page_ids(self, sr: SearchRequest) -> tuple[ColumnElement[Any], list[Any]] | None:
        """A type-level search as (id column, conditions) over the index table of its first
        indexed clause, the other clauses as id filters (the caller adds order, cursor, limit
        and GROUP BY). Index rows exist only for current, live resources, so a page and a
        count need no join to `resources`, and the indexes ending in res_id let a page of 20
        stream in id order instead of sorting every match. None when no clause can drive
        (only _id, _lastUpdated, :missing, :not) or with _sort."""
        if not sr.res_type or sr.sort:
            return None
        items = self._grouped(sr.res_type, sr.clauses)
        driver = next((c for c in items if self._drives(c)), None)
        if driver is None:
            return None
        access = sr.access
        col = self._at(driver, self._item_ids, sr.res_type, driver, access).subquery("driver").c[0]
        others = [
            col.in_(self._at(c, self._item_ids, sr.res_type, c, access))
            for c in items
            if c is not driver
        ]
        if access is not None:
            seen = access.condition(sr.res_type, None, col)
            if seen is not None:
                others.append(seen)
        return col, others

    @staticmethod
    def _drives(c: Clause | OneRow) -> bool:
        if isinstance(c, OneRow) or c.has is not None or c.chain is not None:
            return True
        return c.param is not None and c.modifier not in ("missing", "not")

    # --- clauses that hold of one index row together ----------------------------------------
    @staticmethod
    def _grouped(res_type: str, clauses: list[Clause]) -> list[Clause | OneRow]:
        """The clauses, those on a date parameter with one index row per resource (see
        gateway/search/cardinality.py) gathered per parameter: `date=ge2015&date=lt2016`
        becomes one range on one row, not the intersection of two large sets."""
        out: list[Any] = []
        groups: dict[str, list[Clause]] = {}
        for c in clauses:
            one_row = (
                c.type == "date"
                and c.modifier is None
                and c.param is not None
                and c.param.expression is not None
                and one_date_row(res_type, c.param.expression)
            )
            if not one_row:
                out.append(c)
            elif c.name in groups:
                groups[c.name].append(c)
            else:
                groups[c.name] = [c]
                out.append(groups[c.name])
        return [
            (OneRow(tuple(x)) if len(x) > 1 else x[0]) if isinstance(x, list) else x for x in out
        ]

    def _item_ids(self, res_type: str, c: Clause | OneRow, access: Any = None) -> Select[Any]:
        if not isinstance(c, OneRow):
            return self.ids(res_type, c, access)
        t = self._table(c.clauses[0])
        each = [any_of(self.values.cond(t, k, v) for v in k.values) for k in c.clauses]
        return select(t.c.res_id).where(*self._param_rows(res_type, c.clauses[0]), *each)

    def _cond_item(
        self, res_type: str, c: Clause | OneRow, access: Any = None
    ) -> ColumnElement[bool]:
        if isinstance(c, OneRow):
            return R.res_id.in_(self._item_ids(res_type, c))
        return self.cond(res_type, c, access)

    # --- top level: conditions on the resources table -------------------------------------
    def cond(self, res_type: str, c: Clause, access: Any = None) -> ColumnElement[bool]:
        """A clause on `resources` rows of res_type. `access` (gateway.vocab.context.Access):
        chains and _has see only what the client may see (a condition on a resource it may
        not see would tell it what that resource holds)."""
        if c.name == "_id" and c.param is None:
            return self._id_cond(c)
        if c.name == "_lastUpdated" and c.param is None:
            return self._updated_cond(c)
        if c.modifier == "missing":
            has = exists().where(
                *self._param_rows(res_type, c), self._table(c).c.res_id == R.res_id
            )
            return not_(has) if self._missing(c) else has
        if c.modifier == "not" and c.type == "token":
            return R.res_id.not_in(self._index_ids(res_type, c))
        return R.res_id.in_(self.ids(res_type, c, access))

    def system_cond(self, c: Clause) -> ColumnElement[bool]:
        """A Resource-level parameter across every type: (type, id) pairs."""
        if c.param is None:
            return self._id_cond(c) if c.name == "_id" else self._updated_cond(c)
        t = self._table(c)
        pairs = select(t.c.res_type, t.c.res_id).where(t.c.param == c.name)
        key = tuple_(R.res_type, R.res_id)
        if c.modifier == "missing":
            return key.not_in(pairs) if self._missing(c) else key.in_(pairs)
        matched = pairs.where(any_of(self.values.cond(t, c, v) for v in c.values))
        return key.not_in(matched) if c.modifier == "not" else key.in_(matched)

    # --- ids of resources of one type that satisfy a clause (nestable) ----------------------
    def ids(self, res_type: str, c: Clause, access: Any = None) -> Select[Any]:
        if c.has is not None:
            # _has yields the *targets* of live sources' references, which may be deleted or
            # never stored: kept only when they are live resources.
            return select(R.res_id).where(
                R.res_type == res_type,
                R.deleted.is_(False),
                R.res_id.in_(self._has_ids(res_type, c, access)),
            )
        if c.chain is not None:
            return self._chain_ids(res_type, c, access)
        if (
            c.param is None
            or c.modifier == "missing"
            or (c.modifier == "not" and c.type == "token")
        ):
            return select(R.res_id).where(
                R.res_type == res_type, R.deleted.is_(False), self.cond(res_type, c)
            )
        return self._index_ids(res_type, c)

    def _index_ids(self, res_type: str, c: Clause) -> Select[Any]:
        if c.type == "composite":
            return self._composite_ids(res_type, c)
        if c.type == "special":
            return self._near_ids(res_type, c)
        t = self._table(c)
        value_conds = [self.values.cond(t, c, v) for v in c.values]
        return select(t.c.res_id).where(*self._param_rows(res_type, c), any_of(value_conds))

    def _composite_ids(self, res_type: str, c: Clause) -> Select[Any]:
        """Component 0's rows matching, each other component matching a row of the same
        resource and element (grp); see gateway/search/composite.py."""
        if c.modifier is not None:
            raise self.values.bad_modifier(c)
        assert c.parts is not None
        selects = []
        for parts in c.parts:
            if len(parts) != len(c.components):
                raise outcomes.bad_request(
                    f"Invalid value '{'$'.join(parts)}' for composite parameter '{c.name}': "
                    f"expected {len(c.components)} components separated by '$'",
                    c.name,
                    "GW-1324",
                )
            rows = []
            for i, (kind, value) in enumerate(zip(c.components, parts, strict=True)):
                t = INDEX_TABLES[kind].alias(f"comp{i}")
                part = Clause(c.name, kind, None, [value], c.param)
                # grp IS NOT NULL spelled out: the condition of the partial group indexes.
                rows.append(
                    (
                        t,
                        [
                            t.c.param == component_code(c.name, i),
                            t.c.grp.is_not(None),
                            self.values.cond(t, part, value),
                        ],
                    )
                )
            first, conds = rows[0]
            for t, more in rows[1:]:
                conds.append(
                    exists().where(
                        t.c.res_type == first.c.res_type,
                        t.c.res_id == first.c.res_id,
                        t.c.grp == first.c.grp,
                        *more,
                    )
                )
            selects.append(select(first.c.res_id).where(first.c.res_type == res_type, *conds))
        return selects[0] if len(selects) == 1 else union(*selects)  # type: ignore[return-value]

    def _near_ids(self, res_type: str, c: Clause) -> Select[Any]:
        """Positions within the distance: a box on each coordinate's index, then the
        equirectangular distance (gateway/search/position.py)."""
        if c.modifier is not None:
            raise self.values.bad_modifier(c)
        lat, lon = idx_number.alias("lat"), idx_number.alias("lon")
        alternatives = []
        for v in c.values:
            near = parse_near(v, c.name)
            dy = (lat.c.value - near.lat) * KM_PER_DEGREE
            for centre in near.centres:
                dx = (lon.c.value - centre) * near.lon_scale
                alternatives.append(
                    and_(
                        lat.c.value.between(near.lat - near.dlat, near.lat + near.dlat),
                        lon.c.value.between(centre - near.dlon, centre + near.dlon),
                        dy * dy + dx * dx <= near.km * near.km,
                    )
                )
        return select(lat.c.res_id).where(
            lat.c.res_type == res_type,
            lat.c.param == component_code(c.name, 0),
            lon.c.res_type == lat.c.res_type,
            lon.c.res_id == lat.c.res_id,
            lon.c.param == component_code(c.name, 1),
            lon.c.grp == lat.c.grp,
            lat.c.grp.is_not(None),  # the partial group indexes (SQLite needs it spelled out)
            lon.c.grp.is_not(None),
            any_of(alternatives),
        )

    def _chain_ids(self, res_type: str, c: Clause, access: Any = None) -> Select[Any]:
        assert c.chain is not None
        r = idx_reference.c
        # (type, id) of every target that satisfies the inner clause, as one set joined to the
        # target index: an OR of per-type IN lists made PostgreSQL scan every reference row of
        # the source type, and SQLite scans them for a row-value IN (64 → 2 ms at 200k).
        targets = [
            select(
                literal(target, String).label("t"),
                self._seen(target, self.ids(target, inner, access), access).subquery().c[0],
            )
            for target, inner in c.chain.items()
        ]
        pairs = (targets[0] if len(targets) == 1 else union_all(*targets)).subquery("targets")
        t_type, t_id = pairs.c
        return (
            select(r.res_id)
            .select_from(
                pairs.join(idx_reference, and_(r.target_id == t_id, r.target_type == t_type))
            )
            .where(r.res_type == res_type, r.param == c.name)
        )

    def _has_ids(self, res_type: str, c: Clause, access: Any = None) -> Select[Any]:
        assert c.has is not None
        src, ref, inner = c.has
        r = idx_reference.c
        return select(r.target_id).where(
            r.res_type == src,
            r.param == ref,
            r.target_type == res_type,
            r.res_id.in_(self._seen(src, self.ids(src, inner, access), access)),
        )

    @staticmethod
    def _seen(res_type: str, ids: Select[Any], access: Any) -> Select[Any]:
        """`ids` of res_type, kept to those the client may see."""
        if access is None:
            return ids
        col = ids.subquery().c[0]
        seen = access.condition(res_type, None, col)
        return ids if seen is None else select(col).where(seen)

    # --- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _at(c: Clause | OneRow, build: Callable[..., T], *args: Any) -> T:
        """build(*args) for a top-level clause; its errors are located at the query parameter
        as the client wrote it (`_has:Observation:patient:date`, not `date`)."""
        try:
            return build(*args)
        except outcomes.OperationOutcomeError as err:
            raw = (c.clauses[0] if isinstance(c, OneRow) else c).raw
            if raw:
                err.issues = [replace(i, expression=(raw,)) for i in err.issues]
            raise

    def _id_cond(self, c: Clause) -> ColumnElement[bool]:
        if c.modifier not in (None, "not", "missing"):
            raise self.values.bad_modifier(c)
        if c.modifier == "missing":
            return R.res_id.is_(None) if self._missing(c) else R.res_id.is_not(None)
        cond = R.res_id.in_([unescaped(v) for v in c.values])
        return not_(cond) if c.modifier == "not" else cond

    def _updated_cond(self, c: Clause) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self.values.bad_modifier(c)
        col = R.last_updated
        return any_of(self.values.date_cond(col, col, v, c.name) for v in c.values)

    @staticmethod
    def _missing(c: Clause) -> bool:
        if c.values not in (["true"], ["false"]):
            raise outcomes.bad_request(
                f"Invalid :missing value '{','.join(c.values)}' (true or false)",
                f"{c.name}:missing",
                "GW-1322",
            )
        return c.values == ["true"]

    @staticmethod
    def _table(c: Clause) -> Any:
        if c.type == "composite":
            kind = c.components[0]
        elif c.type == "special":  # near: its coordinates' number rows
            kind = "number"
        else:
            kind = c.type
        table = INDEX_TABLES.get(kind)
        if table is None:
            raise outcomes.bad_request(
                f"Search on {c.type} parameter '{c.name}' is not supported", c.name, "GW-1320"
            )
        return table

    def _param_rows(self, res_type: str, c: Clause) -> list[ColumnElement[bool]]:
        t = self._table(c)
        # Identifier.type rows are indexed under '<code>:of-type' (gateway/search/convert.py).
        if c.modifier == "of-type":
            param = f"{c.name}:of-type"
        elif c.type in ("composite", "special"):  # :missing: any element with all components
            param = component_code(c.name, 0)
        else:
            param = c.name
        return [t.c.res_type == res_type, t.c.param == param]


__all__ = ["SearchSql"]
