"""SearchParameter registry: the shipped R4 definitions plus any custom ones found on disk.

Search parameters are data. The registry loads ``data/search-parameters.json`` (derived from the
R4 corpora by ``build_definitions``) and every SearchParameter JSON file under the extra
directories (e.g. ``profiles/SearchParameter/``); a custom parameter with the same code and base
as an existing one replaces it for that base. No code change is needed to index a new one.

Per resource type, a union expression (``A.x | B.y | …``) is split and only the parts that apply
to that type are kept: parts starting with the type's name, or with ``Resource.`` /
``DomainResource.`` (rewritten to start with the type's name, since FHIRPath engines do not
all treat ``Resource`` as a supertype of the context), or parts with no type prefix at all
(``name | alias``; prefixed with the type's name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.search.build_definitions import DATA_FILE, compact

BASE_TYPES = ("Resource", "DomainResource")
# Parameters on Resource/DomainResource that are not indexed from the resource body.
# _id: the store has the id; _text/_content/_query/_list/_has/_type: no expression / special.
UNINDEXED_BASE = frozenset({"_id", "_text", "_content", "_query", "_list", "_has", "_type"})


@dataclass(frozen=True, slots=True)
class Component:
    definition: str
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParameter:
    url: str
    code: str
    name: str
    base: tuple[str, ...]
    type: str  # number | date | string | token | reference | composite | quantity | uri | special
    # The FHIRPath expression. In views returned by for_type()/get() it holds only the union
    # parts that apply to that resource type (see module docs); in all() it is as defined.
    expression: str | None
    target: tuple[str, ...] = ()
    modifier: tuple[str, ...] = ()
    comparator: tuple[str, ...] = ()
    multiple_or: bool | None = None
    multiple_and: bool | None = None
    component: tuple[Component, ...] = ()
    xpath_usage: str | None = None
    # Where it came from: None for the shipped R4 definitions, else the file path.
    source: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, res: dict[str, Any], source: str | None = None) -> SearchParameter:
        res = compact(res)
        for key in ("url", "code", "base", "type"):
            if not res.get(key):
                raise ValueError(f"SearchParameter {res.get('url') or source!r} lacks {key!r}")
        return cls(
            url=res["url"],
            code=res["code"],
            name=res.get("name") or res["code"],
            base=tuple(res["base"]),
            type=res["type"],
            expression=res.get("expression"),
            target=tuple(res.get("target") or ()),
            modifier=tuple(res.get("modifier") or ()),
            comparator=tuple(res.get("comparator") or ()),
            multiple_or=res.get("multipleOr"),
            multiple_and=res.get("multipleAnd"),
            component=tuple(
                Component(c.get("definition") or "", c.get("expression") or "")
                for c in res.get("component") or ()
            ),
            xpath_usage=res.get("xpathUsage"),
            source=source,
        )

    def expression_for(self, resource_type: str) -> str | None:
        """The union parts of the expression that apply to resource_type, or None."""
        if not self.expression:
            return None
        parts = split_for_type(self.expression, resource_type)
        return " | ".join(parts) if parts else None


# --------------------------------------------------------------------------------------------
# Expression splitting


def split_union(expression: str) -> list[str]:
    """Split on top-level '|' (outside parentheses, brackets and string literals)."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
        i += 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def strip_parens(part: str) -> str:
    """Remove parentheses that enclose the whole part: '((A.b))' → 'A.b'."""
    while part.startswith("(") and part.endswith(")"):
        depth = 0
        for i, ch in enumerate(part):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0 and i != len(part) - 1:
                    return part
        part = part[1:-1].strip()
    return part


_HEAD = re.compile(r"^\(*\s*([A-Za-z_][A-Za-z0-9_]*)")


@lru_cache(maxsize=16384)
def _split_for_type_cached(expression: str, resource_type: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in split_union(expression):
        part = strip_parens(raw)
        m = _HEAD.match(part)
        head = m.group(1) if m else ""
        if head == resource_type:
            out.append(part)
        elif head in BASE_TYPES:
            # Rewrite the type prefix: 'Resource.meta.tag' → 'Observation.meta.tag'.
            s = m.start(1)  # type: ignore[union-attr]
            out.append(part[:s] + resource_type + part[s + len(head) :])
        elif head and head[0].islower() and part.startswith(head):
            # No type prefix ('name | alias'): relative to the resource itself.
            out.append(f"{resource_type}.{part}")
    return tuple(out)


def split_for_type(expression: str, resource_type: str) -> list[str]:
    return list(_split_for_type_cached(expression, resource_type))


# --------------------------------------------------------------------------------------------
# Registry


def _iter_search_parameters(path: Path) -> Iterator[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if isinstance(doc, list):
        items: Iterable[Any] = doc
    elif isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        items = (e.get("resource") for e in doc.get("entry") or ())
    else:
        items = (doc,)
    for item in items:
        if isinstance(item, dict) and item.get("resourceType") == "SearchParameter":
            yield item


class SearchParamRegistry:
    """All known SearchParameters, indexed by resource type and code."""

    def __init__(self, params: Iterable[SearchParameter]):
        self._all: list[SearchParameter] = []
        self._by_url: dict[str, SearchParameter] = {}
        # base type (incl. 'Resource'/'DomainResource') → code → parameter (unsplit)
        self._by_base: dict[str, dict[str, SearchParameter]] = {}
        for p in params:
            self._add(p)
        self._views: dict[str, dict[str, SearchParameter]] = {}

    def _add(self, p: SearchParameter) -> None:
        old = self._by_url.get(p.url)
        if old is not None:
            self._all.remove(old)
        self._all.append(p)
        self._by_url[p.url] = p
        for base in p.base:
            self._by_base.setdefault(base, {})[p.code] = p

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> SearchParamRegistry:
        """The shipped R4 parameters plus every SearchParameter JSON file (a resource, a list,
        or a Bundle of them) found recursively under extra_dirs, in sorted path order; a later
        definition with the same code and base overrides an earlier one for that base."""
        shipped = json.loads(DATA_FILE.read_text(encoding="utf-8"))
        params = [SearchParameter.from_json(p) for p in shipped]
        for d in extra_dirs:
            d = Path(d)
            if not d.is_dir():
                continue
            for path in sorted(d.rglob("*.json")):
                params.extend(
                    SearchParameter.from_json(res, source=str(path))
                    for res in _iter_search_parameters(path)
                )
        return cls(params)

    # -- queries -------------------------------------------------------------------------

    def all(self) -> list[SearchParameter]:
        return list(self._all)

    def by_url(self, url: str) -> SearchParameter | None:
        return self._by_url.get(url)

    def resource_types(self) -> list[str]:
        """Every concrete resource type some parameter is defined on."""
        return sorted(b for b in self._by_base if b not in BASE_TYPES)

    def for_type(self, resource_type: str) -> dict[str, SearchParameter]:
        """code → parameter for resource_type: its own parameters plus the Resource and
        DomainResource ones (a type-specific one wins over a base one with the same code).
        Each parameter's ``expression`` is already split down to this type's parts."""
        view = self._views.get(resource_type)
        if view is None:
            view = {}
            for base in (*BASE_TYPES, resource_type):
                for code, p in self._by_base.get(base, {}).items():
                    expr = p.expression_for(resource_type)
                    view[code] = p if expr == p.expression else replace(p, expression=expr)
            self._views[resource_type] = view
        return view

    def get(self, resource_type: str, code: str) -> SearchParameter | None:
        return self.for_type(resource_type).get(code)
