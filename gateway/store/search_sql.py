"""SearchRequest → SQL over the index tables. One subquery per AND clause; OR inside it.

Semantics follow FHIR R4 search (§3.1.1): token system|code forms, string starts-with on the
normalised value, date ranges by prefix, reference by type/id, URL or identifier, :missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, literal, not_, or_, select, true

from gateway.fhir import outcomes
from gateway.fhir.search_request import Clause, SearchRequest
from gateway.fhir.search_values import date_range, number_range, split_prefix
from gateway.store.tables import INDEX_TABLES, resources

Normaliser = Callable[[str], str]


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SearchSql:
    def __init__(self, normalise: Normaliser, base_url: str = ""):
        self.normalise = normalise
        self.base_url = base_url

    def where(self, sr: SearchRequest) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [
            resources.c.res_type == sr.res_type,
            resources.c.deleted.is_(False),
        ]
        for clause in sr.clauses:
            conds.append(self.clause(sr.res_type, clause))
        return conds

    # --- one AND clause ------------------------------------------------------------------
    def clause(self, res_type: str, c: Clause) -> ColumnElement[bool]:
        if c.name == "_id":
            return resources.c.res_id.in_(c.values)
        if c.name == "_lastUpdated":
            col = resources.c.last_updated
            return or_(*(self._date_cond(col, col, v, c.name) for v in c.values))
        table = INDEX_TABLES.get(c.type)
        if table is None:
            raise outcomes.bad_request(
                f"Search on {c.type} parameter '{c.name}' is not supported yet", c.name, "GW-1320"
            )
        if c.modifier == "missing":
            has = exists().where(
                table.c.res_type == res_type,
                table.c.param == c.name,
                table.c.res_id == resources.c.res_id,
            )
            return not_(has) if c.values == ["true"] else has
        negate = c.modifier == "not" and c.type == "token"
        value_conds = [self._value_cond(table, c, v) for v in c.values]
        sub = select(table.c.res_id).where(
            table.c.res_type == res_type, table.c.param == c.name, or_(*value_conds)
        )
        return resources.c.res_id.not_in(sub) if negate else resources.c.res_id.in_(sub)

    def _value_cond(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        builder = getattr(self, f"_{c.type}")
        return builder(t, c, v)

    # --- per type ------------------------------------------------------------------------
    def _token(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "text":
            return t.c.text.like(_like_escape(self.normalise(v)) + "%", escape="\\")
        if c.modifier not in (None, "not"):
            raise self._bad_modifier(c)
        if "|" not in v:
            return t.c.code == v
        system, _, code = v.partition("|")
        if not system:
            return and_(t.c.system.is_(None), t.c.code == code)
        if not code:
            return t.c.system == system
        return and_(t.c.system == system, t.c.code == code)

    def _string(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "exact":
            return t.c.exact == v
        if c.modifier == "contains":
            return t.c.norm.like("%" + _like_escape(self.normalise(v)) + "%", escape="\\")
        if c.modifier is not None:
            raise self._bad_modifier(c)
        return t.c.norm.like(_like_escape(self.normalise(v)) + "%", escape="\\")

    def _uri(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "below":
            return t.c.uri.like(_like_escape(v) + "%", escape="\\")
        if c.modifier == "above":
            return literal(v).like(t.c.uri + "%")
        if c.modifier is not None:
            raise self._bad_modifier(c)
        return t.c.uri == v

    def _reference(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "identifier":
            system, sep, value = v.partition("|")
            if not sep:
                return t.c.ident_value == v
            return (
                and_(t.c.ident_system == system, t.c.ident_value == value)
                if system
                else (t.c.ident_value == value)
            )
        type_mod = c.modifier if c.modifier and c.modifier[:1].isupper() else None
        if c.modifier is not None and type_mod is None:
            raise self._bad_modifier(c)
        if self.base_url and v.startswith(self.base_url + "/"):
            v = v[len(self.base_url) + 1 :]
        if "://" in v or v.startswith("urn:"):
            url, _, version = v.partition("|")
            cond = t.c.url == url
            return and_(cond, t.c.version == version) if version else cond
        parts = v.split("/")
        if len(parts) >= 2:
            return and_(t.c.target_type == parts[-2], t.c.target_id == parts[-1])
        cond = t.c.target_id == v
        return and_(cond, t.c.target_type == type_mod) if type_mod else cond

    def _date(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self._bad_modifier(c)
        return self._date_cond(t.c.low, t.c.high, v, c.name)

    def _date_cond(self, low: Any, high: Any, v: str, name: str) -> ColumnElement[bool]:
        prefix, value = split_prefix(v)
        sl, sh = date_range(value, name)
        return {
            "eq": lambda: and_(low >= sl, high <= sh),
            "ne": lambda: or_(low < sl, high > sh),
            "gt": lambda: high > sh,
            "lt": lambda: low < sl,
            "ge": lambda: high >= sl,
            "le": lambda: low <= sh,
            "sa": lambda: low > sh,
            "eb": lambda: high < sl,
            "ap": lambda: and_(low <= sh, high >= sl),
        }[prefix]()

    def _number(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self._bad_modifier(c)
        prefix, value = split_prefix(v)
        return self._number_cond(t.c.value, prefix, value, c.name)

    @staticmethod
    def _number_cond(col: Any, prefix: str, value: str, name: str) -> ColumnElement[bool]:
        val, lo, hi = number_range(value, name)
        ap = abs(val) * 0.1
        return {
            "eq": lambda: and_(col >= lo, col < hi),
            "ne": lambda: or_(col < lo, col >= hi),
            "gt": lambda: col > val,
            "lt": lambda: col < val,
            "ge": lambda: col >= val,
            "le": lambda: col <= val,
            "sa": lambda: col > val,
            "eb": lambda: col < val,
            "ap": lambda: and_(col >= val - ap, col <= val + ap),
        }[prefix]()

    def _quantity(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self._bad_modifier(c)
        number, _, unit = v.partition("|")
        prefix, value = split_prefix(number)
        cond = self._number_cond(t.c.value, prefix, value, c.name)
        if unit:
            system, sep, code = unit.partition("|")
            if not sep:
                code, system = system, ""
            unit_cond = or_(t.c.code == code, t.c.unit == code) if code else true()
            cond = and_(cond, unit_cond, t.c.system == system) if system else and_(cond, unit_cond)
        return cond

    @staticmethod
    def _bad_modifier(c: Clause) -> outcomes.OperationOutcomeError:
        return outcomes.bad_request(
            f"Modifier ':{c.modifier}' is not supported for {c.type} parameter '{c.name}'",
            f"{c.name}:{c.modifier}",
            "GW-1321",
        )


__all__ = ["SearchSql", "false"]
