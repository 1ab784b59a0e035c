"""Index rows: what one resource contributes to each search-index table.

Extraction (resource → rows) is a pure function; the store diffs and writes rows. One dataclass
per SearchParameter type, each mapping 1:1 onto an index table (see gateway/store/tables.py).
All rows are frozen and hashable so old/new row sets can be diffed with set operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TokenRow:
    param: str
    system: str | None
    code: str | None
    # Display/text used by the :text modifier, normalised (casefolded, accents stripped).
    text: str | None = None
    # Rows of a composite parameter's components (param `code$0`, `code$1`, …): which element
    # of the composite's base they came from, so components match within one element.
    grp: int | None = None


@dataclass(frozen=True, slots=True)
class StringRow:
    param: str
    # Normalised for default/:contains matching: casefolded, accents stripped, whitespace collapsed.
    norm: str
    # As written, for :exact.
    exact: str
    grp: int | None = None  # as TokenRow.grp


@dataclass(frozen=True, slots=True)
class DateRow:
    param: str
    # The value as a period in UTC, precision-aware:
    # "2024" → [2024-01-01T00:00Z, 2024-12-31T23:59:59.999999Z].
    # None means open-ended (a Period without start or end).
    low: datetime | None
    high: datetime | None
    grp: int | None = None  # as TokenRow.grp


@dataclass(frozen=True, slots=True)
class NumberRow:
    param: str
    value: float
    # Implicit range from the written precision: "100" → [99.5, 100.5).
    low: float
    high: float
    grp: int | None = None  # as TokenRow.grp


@dataclass(frozen=True, slots=True)
class QuantityRow:
    param: str
    value: float
    low: float
    high: float
    system: str | None
    code: str | None
    unit: str | None
    # UCUM-canonical form, when the unit is a known UCUM unit (e.g. mg → g ×1e-3).
    canon_value: float | None = None
    canon_code: str | None = None
    grp: int | None = None  # as TokenRow.grp


@dataclass(frozen=True, slots=True)
class ReferenceRow:
    param: str
    # Local/relative reference "Patient/123" → target_type="Patient", target_id="123".
    target_type: str | None
    target_id: str | None
    # Absolute or canonical reference as written (url | version stripped into version).
    url: str | None = None
    version: str | None = None
    # Reference.identifier, for the :identifier modifier.
    ident_system: str | None = None
    ident_value: str | None = None
    grp: int | None = None  # as TokenRow.grp


@dataclass(frozen=True, slots=True)
class UriRow:
    param: str
    uri: str
    grp: int | None = None  # as TokenRow.grp


@dataclass(slots=True)
class IndexRows:
    token: set[TokenRow] = field(default_factory=set)
    string: set[StringRow] = field(default_factory=set)
    date: set[DateRow] = field(default_factory=set)
    number: set[NumberRow] = field(default_factory=set)
    quantity: set[QuantityRow] = field(default_factory=set)
    reference: set[ReferenceRow] = field(default_factory=set)
    uri: set[UriRow] = field(default_factory=set)

    TABLES = ("token", "string", "date", "number", "quantity", "reference", "uri")
