"""Query string → typed SearchRequest, checked against the SearchParameter registry.

Unknown parameters and malformed values are 400s (or, with Prefer: handling=lenient, ignored
and reported). Result parameters (_count, _sort, …) are separated from filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.fhir import outcomes
from gateway.fhir.outcomes import Issue

RESULT_PARAMS = {
    "_count",
    "_offset",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_format",
    "_pretty",
    "_contained",
    "_containedType",
    "_cursor",
}
# Parameters the store answers from its own columns rather than index tables.
SPECIAL = {"_id": "token", "_lastUpdated": "date"}
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(slots=True)
class Clause:
    name: str  # parameter code
    type: str  # token | string | date | number | quantity | reference | uri | special
    modifier: str | None
    values: list[str]  # OR-ed
    param: Any = None  # registry SearchParameter (None for _id/_lastUpdated)


@dataclass(slots=True)
class SearchRequest:
    res_type: str
    clauses: list[Clause] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    total: str = "accurate"
    summary: str | None = None
    elements: list[str] | None = None
    warnings: list[Issue] = field(default_factory=list)


def split_or(value: str) -> list[str]:
    """Split on unescaped commas; '\\,' is a literal comma."""
    out, cur, i = [], [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in ",$|\\":
            cur.append(value[i + 1])
            i += 2
            continue
        if c == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def parse_search(
    registry: Any,
    res_type: str,
    query: list[tuple[str, str]],
    *,
    lenient: bool = False,
    default_count: int = 20,
    max_count: int = 1000,
) -> SearchRequest:
    sr = SearchRequest(res_type, count=default_count)
    params = registry.for_type(res_type)
    for raw_name, value in query:
        name, _, modifier = raw_name.partition(":")
        if name in RESULT_PARAMS:
            _result_param(sr, name, value, max_count)
            continue
        if name in SPECIAL:
            sr.clauses.append(Clause(name, SPECIAL[name], modifier or None, split_or(value)))
            continue
        sp = params.get(name)
        if sp is None or "." in name:
            issue = Issue(
                "not-supported",
                f"Unknown search parameter '{raw_name}' for {res_type}",
                "GW-1300",
                severity="warning" if lenient else "error",
                expression=(raw_name,),
            )
            if lenient:
                sr.warnings.append(issue)
                continue
            raise outcomes.OperationOutcomeError([issue], 400)
        sr.clauses.append(Clause(name, sp.type, modifier or None, split_or(value), sp))
    return sr


def _result_param(sr: SearchRequest, name: str, value: str, max_count: int) -> None:
    if name in ("_count", "_offset"):
        if not value.isdigit():
            raise outcomes.bad_request(f"Invalid {name} '{value}'", name, "GW-1301")
        if name == "_count":
            sr.count = min(int(value), max_count)
        else:
            sr.offset = int(value)
    elif name == "_sort":
        for key in value.split(","):
            key = key.strip()
            if key:
                sr.sort.append((key.lstrip("-"), key.startswith("-")))
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise outcomes.bad_request(f"Invalid _total '{value}'", "_total", "GW-1302")
        sr.total = value
    elif name == "_summary":
        if value not in ("true", "false", "count", "data", "text"):
            raise outcomes.bad_request(f"Invalid _summary '{value}'", "_summary", "GW-1303")
        sr.summary = value
    elif name == "_elements":
        sr.elements = [e.strip() for e in value.split(",") if e.strip()]
