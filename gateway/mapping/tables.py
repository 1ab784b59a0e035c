"""Code tables: the spellings regional systems use → one code of a FHIR code system.

A table is data (`mappings/tables.yaml` and a spec's own `tables:`): its code system and, per
code, the source spellings that mean it; the first spelling is what the reverse mapping
writes. The code itself is always accepted, and comparison ignores case and full-width forms
(`ＭＡＬＥ` = `male`). `passthrough` (a regular expression) lets values that already are
target codes or canonical URLs through unchanged; `omit` lists spellings that are valid but
have no code in this system (the element is then left out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping.values import ValueProblem, fold


class TableError(ValueError):
    """A table that cannot be loaded; the message names it and what is wrong."""


@dataclass(frozen=True)
class CodeTable:
    name: str
    system: str | None
    codes: dict[str, tuple[str, ...]]
    passthrough: re.Pattern[str] | None = None
    omit: frozenset[str] = frozenset()
    _lookup: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for code, spellings in self.codes.items():
            for spelling in (*spellings, code):
                known = self._lookup.setdefault(fold(spelling), code)
                if known != code:
                    raise TableError(
                        f"table {self.name}: '{spelling}' means both {known} and {code}"
                    )

    def code(self, value: str) -> str | None:
        """The code `value` means; None for a spelling the table omits."""
        key = fold(value)
        found = self._lookup.get(key)
        if found is not None:
            return found
        if key in self.omit:
            return None
        if self.passthrough is not None and self.passthrough.fullmatch(value):
            return value
        shown = ", ".join(s[0] if s else c for c, s in list(self.codes.items())[:12])
        raise ValueProblem(f"unknown code '{value}' (table {self.name}: {shown}, …)")

    def native(self, code: str) -> str | None:
        """The source spelling of a code (None: not a code of this table)."""
        if code in self.codes:
            spellings = self.codes[code]
            return spellings[0] if spellings else code
        if self.passthrough is not None and self.passthrough.fullmatch(code):
            return code
        return None


def load_tables(raw: Mapping[str, Any], where: str) -> dict[str, CodeTable]:
    tables: dict[str, CodeTable] = {}
    if not isinstance(raw, Mapping):
        raise TableError(f"{where}: tables must be a mapping of name → table")
    for name, body in raw.items():
        if not isinstance(body, Mapping) or not isinstance(body.get("codes"), Mapping):
            raise TableError(f"{where}: table {name} needs `codes:` (code → spellings)")
        codes: dict[str, tuple[str, ...]] = {}
        for code, spellings in body["codes"].items():
            if spellings is None:
                spellings = []
            if not isinstance(spellings, list) or not all(
                isinstance(s, str | int) for s in spellings
            ):
                raise TableError(f"{where}: table {name}, code {code}: a list of spellings")
            codes[str(code)] = tuple(str(s) for s in spellings)
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            raise TableError(f"{where}: table {name}: system must be a URI")
        passthrough = body.get("passthrough")
        omit = frozenset(fold(str(s)) for s in body.get("omit") or [])
        tables[str(name)] = CodeTable(
            str(name), system, codes, re.compile(passthrough) if passthrough else None, omit
        )
    return tables
