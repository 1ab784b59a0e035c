"""The search request model: what a query string means once parsed (gateway.search.request
parses it against the SearchParameter registry; the SQL builder and the pager read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.vocab.outcomes import Issue


@dataclass(slots=True)
class Clause:
    name: str  # parameter code (or "_has")
    type: str  # token | string | date | number | quantity | reference | uri | has
    modifier: str | None
    values: list[str]  # OR-ed
    param: Any = None  # registry SearchParameter (None for _id/_lastUpdated/_has)
    # Chained: target type → the clause to apply to resources of that type.
    chain: dict[str, Clause] | None = None
    # Reverse chain: (source type, reference parameter, clause on the source type).
    has: tuple[str, str, Clause] | None = None
    # The query parameter as the client wrote it (top-level clauses): where errors point;
    # and its position in the query (dropped with lenient handling: left out of the links).
    raw: str | None = None
    pos: int | None = None
    # Composite: the component parameters' types, and each OR value split into components.
    components: tuple[str, ...] = ()
    parts: list[list[str]] | None = None


@dataclass(frozen=True, slots=True)
class Include:
    source: str  # resource type whose references are followed ("*": any)
    param: str | None  # reference parameter code; None for "*"
    target: str | None  # restrict to this target type
    iterate: bool = False
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class SortKey:
    code: str
    descending: bool
    type: str  # special | string | token | …


@dataclass(slots=True)
class SearchRequest:
    res_type: str | None  # None: system-level search over `types`
    clauses: list[Clause] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    cursor: str | None = None
    sort: list[SortKey] = field(default_factory=list)
    total: str | None = None  # None: the server decides (accurate on the first page)
    summary: str | None = None
    elements: list[str] | None = None
    includes: list[Include] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    # System search over several types: type → its clauses (clauses then stays empty).
    type_clauses: dict[str, list[Clause]] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    # Positions of query parameters ignored under lenient handling: the self link leaves them
    # out (R4 search.html: it shows the parameters actually used).
    ignored: set[int] = field(default_factory=set)
    # The client's access (gateway.vocab.context.Access): what the search may see, in its
    # matches, total, chains and _has; None: everything.
    access: Any = None


# An escaped `\|` is kept apart from the separating `|` until a value is split into its
# system|code (token), number|system|code (quantity), url|version (canonical) parts; then
# each part turns it back into `|` (gateway.search.sql_values.literal).
ESCAPED_PIPE = "\ue000"


def split_or(value: str) -> list[str]:
    """Split on unescaped commas; '\\,' is a literal comma."""
    return ["$".join(parts) for parts in split_composite(value)]


def split_composite(value: str) -> list[list[str]]:
    """Split on unescaped commas (OR), each value on unescaped '$' (a composite parameter's
    components); '\\,', '\\$', '\\|' and '\\\\' are literal ('\\|' as ESCAPED_PIPE)."""
    out: list[list[str]] = []
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in ",$|\\":
            cur.append(ESCAPED_PIPE if value[i + 1] == "|" else value[i + 1])
            i += 2
            continue
        if c == ",":
            out.append([*parts, "".join(cur)])
            parts, cur = [], []
        elif c == "$":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append([*parts, "".join(cur)])
    return out
