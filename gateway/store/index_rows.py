"""IndexRows (pure extraction output) ↔ index-table rows, and the per-table diff on update."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from gateway.search.rows import IndexRows
from gateway.store import clock
from gateway.store.tables import TIME_MAX, TIME_MIN


def _date_bound(value: datetime | None, default: int) -> int:
    return default if value is None else clock.from_datetime(value)


def table_rows(res_type: str, res_id: str, rows: IndexRows) -> dict[str, list[dict[str, Any]]]:
    """Rows ready for INSERT, keyed by index kind (token, string, …)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in IndexRows.TABLES:
        items = getattr(rows, kind)
        if not items:
            continue
        converted = []
        names: tuple[str, ...] | None = None
        for row in items:
            # Rows are flat: a field walk, not dataclasses.asdict (which deep-copies).
            names = names or tuple(f.name for f in fields(row))
            d = {n: getattr(row, n) for n in names}
            if kind == "date":
                d["low"] = _date_bound(d["low"], TIME_MIN)
                d["high"] = _date_bound(d["high"], TIME_MAX)
            d["res_type"] = res_type
            d["res_id"] = res_id
            converted.append(d)
        out[kind] = converted
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
