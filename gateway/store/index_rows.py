"""IndexRows (pure extraction output) ↔ index-table rows, and the per-table diff on update."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from gateway.store import rows as row_types
from gateway.store.rows import IndexRows
from gateway.store.tables import TIME_MAX, TIME_MIN
from gateway.vocab import clock

_ROW_CLASSES = {
    "token": row_types.TokenRow,
    "string": row_types.StringRow,
    "date": row_types.DateRow,
    "number": row_types.NumberRow,
    "quantity": row_types.QuantityRow,
    "reference": row_types.ReferenceRow,
    "uri": row_types.UriRow,
}
# Each index table's columns, in the order table_rows() lays out its tuples.
COLUMNS: dict[str, tuple[str, ...]] = {
    kind: ("res_type", "res_id", *(f.name for f in fields(cls)))
    for kind, cls in _ROW_CLASSES.items()
}
# One C-level getter per row type: (field, field, …) in COLUMNS order.
_VALUES = {kind: attrgetter(*cols[2:]) for kind, cols in COLUMNS.items()}


def _date_bound(value: datetime | None, default: int) -> int:
    return default if value is None else clock.from_datetime(value)


def table_rows(res_type: str, res_id: str, rows: IndexRows) -> dict[str, list[tuple[Any, ...]]]:
    """Rows ready for bulk INSERT (tuples in COLUMNS order), keyed by index kind."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for kind in IndexRows.TABLES:
        items = getattr(rows, kind)
        if not items:
            continue
        if kind == "date":
            out[kind] = [
                (
                    res_type,
                    res_id,
                    r.param,
                    _date_bound(r.low, TIME_MIN),
                    _date_bound(r.high, TIME_MAX),
                    r.grp,
                )
                for r in items
            ]
            continue
        key = (res_type, res_id)
        values = _VALUES[kind]
        # Rows are flat: a field getter, not dataclasses.astuple (which deep-copies).
        out[kind] = [key + values(r) for r in items]
    return out


def changed_kinds(old: IndexRows | None, new: IndexRows | None) -> list[str]:
    """Index kinds whose row sets differ: only those tables are rewritten on update."""
    kinds = []
    for kind in IndexRows.TABLES:
        before = getattr(old, kind) if old is not None else set()
        after = getattr(new, kind) if new is not None else set()
        if before != after:
            kinds.append(kind)
    return kinds
