"""Query string → typed SearchRequest, checked against the SearchParameter registry.

What a search cannot use (R4 search.html, "Handling Errors"), by `handling`:
- STRICT (`Prefer: handling=strict`): unknown parameters and malformed values are 400s;
- IGNORE_UNKNOWN (the default): unknown or unsupported parameters are ignored, each reported
  as a warning in the Bundle's outcome entry and left out of the self link ("servers SHOULD
  ignore unknown or unsupported parameters"); a malformed value of a known one is still a 400;
- LENIENT (`Prefer: handling=lenient`): malformed values are ignored and reported too.
Result parameters (_count, _sort, _include, …) are separated from filters.
Chains (``subject:Patient.name=张``, several levels) and reverse chains
(``_has:Observation:patient:code=…``) become nested clauses, resolved per target type here so
the SQL builder never consults the registry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.search.composite import served_components
from gateway.search.position import is_position
from gateway.vocab import outcomes
from gateway.vocab.outcomes import Issue
from gateway.vocab.params import is_uint
from gateway.vocab.search_model import (
    Clause,
    Include,
    SearchRequest,
    SortKey,
    split_composite,
    split_or,
)

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
    "_type",
}
# Result parameters served only with their default value (contained resources are not
# searched on their own).
UNSERVED_DEFAULTS = {"_contained": "false", "_containedType": "container"}
# Parameters the store answers from its own columns rather than index tables.
SPECIAL = {"_id": "token", "_lastUpdated": "date"}
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SORTABLE = {"string", "token", "date", "number", "quantity", "uri", "reference"}
MAX_CHAIN = 4
# OR-ed values a search may hold in all (each is a bound parameter or a few; the databases
# cap a statement's parameters near 32k).
MAX_VALUES = 5000
# Filter parameters (AND-ed) in one search, and OR-ed values of one composite parameter (each
# a compound SELECT; SQLite allows 500 in one statement): real searches use a handful.
MAX_FILTERS = 100
MAX_SORT_KEYS = 10
MAX_COMPOSITE_VALUES = 200


STRICT, IGNORE_UNKNOWN, LENIENT = "strict", "ignore-unknown", "lenient"
HANDLINGS = (STRICT, IGNORE_UNKNOWN, LENIENT)
_UNKNOWN_CODES = ("GW-1300", "GW-1309")  # an unknown parameter, an unsupported value of one


class _Unknown(Exception):
    def __init__(self, text: str):
        self.text = text


class SearchParser:
    def __init__(self, registry: Any, res_type: str | None, types: list[str], handling: str):
        self.registry = registry
        self.res_type = res_type
        self.types = types
        self.handling = handling
        self.pos: int | None = None  # the query parameter being parsed

    def fail(self, sr: SearchRequest, raw: str, text: str, gw: str = "GW-1300") -> None:
        unknown = gw in _UNKNOWN_CODES
        ignore = self.handling == LENIENT or (self.handling == IGNORE_UNKNOWN and unknown)
        issue = Issue(
            "not-supported" if unknown else "invalid",
            text,
            gw,
            severity="warning" if ignore else "error",
            expression=(raw,),
        )
        if not ignore:
            raise outcomes.OperationOutcomeError([issue], 400)
        sr.warnings.append(issue)
        if self.pos is not None:
            sr.ignored.add(self.pos)

    # --- filters ---------------------------------------------------------------------------
    def clause(self, res_type: str, raw: str, value: str, depth: int = 0) -> Clause:
        if depth > MAX_CHAIN:
            raise _Unknown(f"Chain '{raw}' is deeper than {MAX_CHAIN} levels")
        if raw.startswith("_has:"):
            return self._has(res_type, raw, value, depth)
        head, dot, tail = raw.partition(".")
        name, colon, modifier = head.partition(":")
        if colon and not modifier:
            raise _Unknown(f"Empty modifier in '{raw}'")
        values = split_or(value)
        if name in SPECIAL and not dot:
            return Clause(name, SPECIAL[name], modifier or None, values)
        sp = self.registry.get(res_type, name)
        if sp is not None and sp.type == "composite" and not dot:
            return self._composite(res_type, sp, modifier, value)
        if sp is not None and is_position(sp) and not dot:
            return Clause(name, "special", modifier or None, values, sp)
        if sp is None or sp.type not in SORTABLE or not sp.expression:
            # No expression (_text, _content, _query, _list): nothing is indexed, so it is
            # not served; rejecting it beats an always-empty result.
            raise _Unknown(f"Unknown search parameter '{name}' for {res_type}")
        if sp.type == "reference" and modifier[:1].isupper() and not self._targets(sp, modifier):
            raise _Unknown(f"{modifier} is not a target type of '{name}' on {res_type}")
        if not dot:
            return Clause(name, sp.type, modifier or None, values, sp)
        if sp.type != "reference":
            raise _Unknown(f"'{name}' is not a reference parameter and cannot be chained")
        targets = [modifier] if modifier else list(sp.target)
        chain: dict[str, Clause] = {}
        errors = []
        for t in targets:
            try:
                chain[t] = self.clause(t, tail, value, depth + 1)
            except _Unknown as exc:
                errors.append(exc.text)
        if not chain:
            if len(errors) == 1:
                raise _Unknown(errors[0])
            if not errors:
                raise _Unknown(f"'{name}' has no target types to chain to")
            raise _Unknown(
                f"'{tail}' cannot be searched on any target type of '{name}' "
                f"({', '.join(sorted(targets))})"
            )
        return Clause(name, "reference", None, values, sp, chain=chain)

    def _targets(self, sp: Any, rtype: str) -> bool:
        """Whether reference parameter sp may point at resources of type rtype."""
        if sp.target:
            return rtype in sp.target
        return rtype in self.registry.resource_types()

    def _composite(self, res_type: str, sp: Any, modifier: str, value: str) -> Clause:
        types = served_components(self.registry, res_type, sp)
        if types is None:
            raise _Unknown(f"Composite search parameter '{sp.code}' is not supported")
        if modifier == "missing":  # true/false, not components
            return Clause(sp.code, "composite", modifier, split_or(value), sp, components=types)
        parts = split_composite(value)  # the component count is checked with the values
        if len(parts) > MAX_COMPOSITE_VALUES:
            raise outcomes.bad_request(
                f"Too many values for composite '{sp.code}': at most {MAX_COMPOSITE_VALUES}",
                sp.code,
                "GW-1308",
            )
        values = ["$".join(p) for p in parts]
        return Clause(
            sp.code, "composite", modifier or None, values, sp, components=types, parts=parts
        )

    def _has(self, res_type: str, raw: str, value: str, depth: int) -> Clause:
        parts = raw.split(":", 3)
        if len(parts) < 4 or not parts[1] or not parts[2] or not parts[3]:
            raise _Unknown(f"Malformed '{raw}': expected _has:Type:reference:parameter")
        _, src, ref, rest = parts
        if src not in self.registry.resource_types():
            raise _Unknown(f"Unknown resource type '{src}' in '{raw}'")
        sp = self.registry.get(src, ref)
        if sp is None or sp.type != "reference":
            raise _Unknown(f"'{ref}' is not a reference parameter of {src}")
        if sp.target and res_type not in sp.target:
            raise _Unknown(f"{src}.{ref} does not refer to {res_type}")
        inner = self.clause(src, rest, value, depth + 1)
        return Clause("_has", "has", None, split_or(value), sp, has=(src, ref, inner))

    def add_filter(self, sr: SearchRequest, raw: str, value: str) -> None:
        try:
            pos = self.pos
            if self.res_type:
                clause = self.clause(self.res_type, raw, value)
                sr.clauses.append(replace(clause, raw=raw, pos=pos))
            elif self.types:  # system search over several types: the parameter on each
                for t in self.types:
                    clause = replace(self.clause(t, raw, value), raw=raw, pos=pos)
                    sr.type_clauses.setdefault(t, []).append(clause)
            else:  # system search without _type: only Resource parameters
                clause = self._system_clause(raw, split_or(value))
                sr.clauses.append(replace(clause, raw=raw, pos=pos))
        except _Unknown as exc:
            self.fail(sr, raw, exc.text)

    def _system_clause(self, raw: str, values: list[str]) -> Clause:
        name, _, modifier = raw.partition(":")
        if name in SPECIAL:
            return Clause(name, SPECIAL[name], modifier or None, values)
        if raw.endswith(":"):
            raise _Unknown(f"Empty modifier in '{raw}'")
        sp = self.registry.get("Resource", name) or self.registry.get("DomainResource", name)
        if sp is None or sp.type not in SORTABLE or not sp.expression:
            raise _Unknown(f"Unknown search parameter '{name}' for a search across all types")
        return Clause(name, sp.type, modifier or None, values, sp)

    # --- result parameters --------------------------------------------------------------
    def include(self, sr: SearchRequest, raw: str, value: str) -> None:
        name, _, modifier = raw.partition(":")
        if modifier not in ("", "iterate", "recurse"):
            return self.fail(sr, raw, f"Unknown modifier '{modifier}' on {name}", "GW-1306")
        reverse = name == "_revinclude"
        if value == "*":
            sr.includes.append(Include("*", None, None, bool(modifier), reverse))
            return None
        parts = value.split(":")
        if len(parts) not in (2, 3):
            return self.fail(sr, raw, f"Invalid {name} '{value}'", "GW-1306")
        src, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if code != "*":
            sp = self.registry.get(src, code)
            if sp is None or sp.type != "reference":
                return self.fail(sr, raw, f"{src}:{code} is not a reference parameter", "GW-1306")
            if target is not None and not self._targets(sp, target):
                return self.fail(sr, raw, f"{target} is not a target of {src}:{code}", "GW-1306")
        inc = Include(src, None if code == "*" else code, target, bool(modifier), reverse)
        if inc not in sr.includes:
            sr.includes.append(inc)
        return None

    def sort(self, sr: SearchRequest, value: str) -> None:
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if len(sr.sort) + len(keys) > MAX_SORT_KEYS:
            raise outcomes.bad_request(f"At most {MAX_SORT_KEYS} _sort keys", "_sort", "GW-1305")
        for key in keys:
            if key.lstrip("-") in {k.code for k in sr.sort}:
                continue  # a later key on the same parameter cannot change the order
            code, desc = key.lstrip("-"), key.startswith("-")
            if code in ("_id", "_lastUpdated"):
                sr.sort.append(SortKey(code, desc, "special"))
                continue
            sp = self.registry.get(self.res_type, code) if self.res_type else None
            if sp is None or sp.type not in SORTABLE:
                raise outcomes.bad_request(
                    f"Cannot sort by '{code}'" + (f" on {self.res_type}" if self.res_type else ""),
                    "_sort",
                    "GW-1305",
                )
            sr.sort.append(SortKey(code, desc, sp.type))


def parse_search(
    registry: Any,
    res_type: str | None,
    query: list[tuple[str, str]],
    *,
    handling: str = STRICT,
    default_count: int = 20,
    max_count: int = 1000,
    types: list[str] | None = None,
) -> SearchRequest:
    sr = SearchRequest(res_type, count=default_count, types=list(types or []))
    parser = SearchParser(registry, res_type, sr.types, handling)
    n_values = n_filters = 0
    for pos, (raw_name, value) in enumerate(query):
        parser.pos = pos
        if "\x00" in raw_name or "\x00" in value:
            # No stored value holds a NUL (PostgreSQL's text cannot): a 400 on every database.
            raise outcomes.bad_request(
                f"A NUL character in the search parameter {raw_name.replace(chr(0), '?')!r}",
                raw_name.replace("\x00", "\\u0000"),
                "GW-1312",
            )
        name = raw_name.partition(":")[0]
        if name not in RESULT_PARAMS:
            n_filters += 1
            n_values += (value.count(",") + 1) * max(1, len(sr.types))
            if n_values > MAX_VALUES or n_filters > MAX_FILTERS:
                raise outcomes.bad_request(
                    f"Too many search values: at most {MAX_VALUES} values and {MAX_FILTERS} "
                    "parameters in one search",
                    raw_name,
                    "GW-1308",
                )
        if name in ("_include", "_revinclude"):
            parser.include(sr, raw_name, value)
        elif name == "_sort":
            parser.sort(sr, value)
        elif name == "_type" and res_type and {t.strip() for t in value.split(",")} != {res_type}:
            # `_type` names the types of a system search; on /Type it can only repeat it.
            parser.fail(sr, raw_name, f"_type={value} on a {res_type} search", "GW-1304")
        elif name in UNSERVED_DEFAULTS and value != UNSERVED_DEFAULTS[name]:
            parser.fail(sr, raw_name, f"{name}={value} is not supported", "GW-1309")
        elif name in RESULT_PARAMS:
            _result_param(sr, name, value, max_count)
        else:
            parser.add_filter(sr, raw_name, value)
    return sr


def _result_param(sr: SearchRequest, name: str, value: str, max_count: int) -> None:
    if name in ("_count", "_offset"):
        if not is_uint(value):
            raise outcomes.bad_request(f"Invalid {name} '{value}'", name, "GW-1301")
        if name == "_count":
            sr.count = min(int(value), max_count)
        else:
            sr.offset = int(value)
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise outcomes.bad_request(f"Invalid _total '{value}'", "_total", "GW-1302")
        sr.total = value
    elif name == "_summary":
        if value not in ("true", "false", "count", "data", "text"):
            raise outcomes.bad_request(f"Invalid _summary '{value}'", "_summary", "GW-1303")
        sr.summary = None if value == "false" else value
    elif name == "_elements":
        sr.elements = [e.strip() for e in value.split(",") if e.strip()]
    elif name == "_cursor":
        sr.cursor = value
