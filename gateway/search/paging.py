"""Sort keys and keyset (cursor) paging for searches.

Paging choice: keyset, not offsets. Every search is ordered by a total order — the `_sort`
keys, then the resource type (system search) and id — and `next`/`previous` links carry an
opaque cursor holding the sort-key values of the page's last (first) row. A page is "rows after
(before) those values", so inserts and deletes elsewhere never shift rows between pages: no
duplicates and no gaps for resources whose sort values do not change. Without `_sort` the order
is by id, which no update changes. (A resource whose `_sort` value changes between pages may
be seen twice or not at all: it moved.)

A parameter sort key is the smallest indexed value (largest for descending; for dates the
period start, or the end when descending), read by a correlated subquery; resources without a
value sort last in both directions (a 0/1 "missing" key before the value).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, func, or_, select

from gateway.store.tables import INDEX_TABLES, resources
from gateway.vocab import outcomes
from gateway.vocab.params import MAX_BIGINT
from gateway.vocab.search_model import SearchRequest, SortKey

R = resources.c
Key = tuple[Any, bool]  # (SQL expression, descending)

# parameter type → (column for ascending, column for descending, value when missing)
_SORT_COLUMNS: dict[str, tuple[str, str, Any]] = {
    "string": ("norm", "norm", ""),
    "token": ("code", "code", ""),
    "date": ("low", "high", 0),
    "number": ("value", "value", 0.0),
    "quantity": ("value", "value", 0.0),
    "uri": ("uri", "uri", ""),
    "reference": ("target_id", "target_id", ""),
}


def sort_keys(sr: SearchRequest) -> list[Key]:
    keys: list[Key] = []
    for key in sr.sort:
        if key.code == "_id":
            keys.append((R.res_id, key.descending))
        elif key.code == "_lastUpdated":
            keys.append((R.last_updated, key.descending))
        else:
            keys.extend(_param_keys(sr.res_type or "", key))
    if not sr.res_type:
        keys.append((R.res_type, False))
    keys.append((R.res_id, False))
    return keys


def _param_keys(res_type: str, key: SortKey) -> list[Key]:
    t = INDEX_TABLES[key.type]
    asc_col, desc_col, missing = _SORT_COLUMNS[key.type]
    col = t.c[desc_col if key.descending else asc_col]
    agg = func.max(col) if key.descending else func.min(col)
    value = (
        select(agg)
        .where(t.c.res_type == res_type, t.c.res_id == R.res_id, t.c.param == key.code)
        .scalar_subquery()
    )
    flag = case((value.is_(None), 1), else_=0)
    return [(flag, False), (func.coalesce(value, missing), key.descending)]


def order_by(keys: list[Key], reverse: bool = False) -> list[Any]:
    return [expr.desc() if desc != reverse else expr.asc() for expr, desc in keys]


def beyond(keys: list[Key], values: list[Any], before: bool = False) -> ColumnElement[bool]:
    """Rows strictly after (or before) the row whose key values are `values`."""
    ors = []
    for i, (expr, desc) in enumerate(keys):
        eqs = [k == v for (k, _), v in zip(keys[:i], values[:i], strict=True)]
        greater = desc == before  # ascending & after, or descending & before
        ors.append(and_(*eqs, expr > values[i] if greater else expr < values[i]))
    return or_(*ors)


def encode_cursor(direction: str, values: list[Any]) -> str:
    raw = orjson.dumps({"d": direction, "v": values})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, keys: list[Key]) -> tuple[str, list[Any]]:
    """A cursor's direction and key values, checked against the keys' SQL types: a forged
    or foreign cursor is a 400, never a database error."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
        direction, values = doc["d"], doc["v"]
        if direction not in ("a", "b") or not isinstance(values, list):
            raise ValueError(direction)
        if len(values) != len(keys):
            raise ValueError("key count")
        if not all(_fits(expr, v) for (expr, _), v in zip(keys, values, strict=True)):
            raise ValueError("key type")
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise ValueError("NUL")  # no text a database stores holds one
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise outcomes.bad_request(
            "Invalid or expired _cursor: follow the links of a fresh search",
            "_cursor",
            "GW-1307",
        ) from None
    return direction, values


def _fits(expr: Any, value: Any) -> bool:
    if value is None:  # no key value is ever NULL (missing values sort by a flag)
        return False
    try:
        expected = expr.type.python_type
    except NotImplementedError:  # untyped expression: any JSON scalar
        return isinstance(value, str | int | float)
    if expected is int:
        return type(value) is int and -MAX_BIGINT - 1 <= value <= MAX_BIGINT
    if expected is float:
        return type(value) in (int, float) and math.isfinite(value)
    return isinstance(value, expected)
