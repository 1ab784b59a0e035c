"""Local terminology: CodeSystems and ValueSets from profiles/ and the core valuesets.json.

Expansion is local only. A value set that needs an external code system (SNOMED CT, LOINC,
UCUM, …) or an unsupported filter cannot be expanded: `expand()` returns None and the
validator skips the binding rather than guessing. Expansions are cached per canonical URL.

A code system that changed its canonical URL names the former one as an identifier with
`use = old` (our national code systems moved to their WS/T 500 OIDs): codings written with the
former URL are still found and still fit the value sets that include the system.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


def strip_version(canonical: str) -> str:
    return canonical.split("|", 1)[0]


@dataclass(slots=True)
class Concept:
    code: str
    display: str | None
    definition: str | None = None
    designations: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    children: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CodeSystemEntry:
    url: str
    version: str | None
    name: str | None
    content: str
    case_sensitive: bool
    resource: dict[str, Any]
    concepts: dict[str, Concept]

    @property
    def complete(self) -> bool:
        return self.content == "complete"

    def find(self, code: str) -> Concept | None:
        found = self.concepts.get(code)
        if found is None and not self.case_sensitive:
            lowered = code.lower()
            found = next((c for k, c in self.concepts.items() if k.lower() == lowered), None)
        return found

    def descendants(self, code: str) -> Iterator[str]:
        for child in self.concepts[code].children if code in self.concepts else ():
            yield child
            yield from self.descendants(child)


@dataclass(frozen=True, slots=True)
class ExpansionItem:
    system: str
    code: str
    display: str | None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Expansion:
    url: str
    items: tuple[ExpansionItem, ...]
    pairs: frozenset[tuple[str, str]]
    codes: frozenset[str]
    complete: bool = True  # False: built from a code system fragment, absence proves nothing

    def contains(self, system: str | None, code: str) -> bool:
        if system is None:
            return code in self.codes
        return (system, code) in self.pairs


def _flatten(entry_concepts: Iterable[dict], out: dict[str, Concept], parent: str | None) -> None:
    for raw in entry_concepts:
        code = raw.get("code")
        if not isinstance(code, str):
            continue
        props = {p.get("code"): _prop_value(p) for p in raw.get("property", [])}
        concept = Concept(
            code,
            raw.get("display"),
            raw.get("definition"),
            list(raw.get("designation", [])),
            props,
            parent,
        )
        out[code] = concept
        if parent and parent in out:
            out[parent].children.append(code)
        _flatten(raw.get("concept", []), out, code)


def _former_urls(resource: dict[str, Any]) -> list[str]:
    """The canonical URLs a code system replaced: identifiers with use = old holding a URI."""
    return [
        i["value"]
        for i in resource.get("identifier", [])
        if isinstance(i, dict)
        and i.get("use") == "old"
        and i.get("system") == "urn:ietf:rfc:3986"
        and isinstance(i.get("value"), str)
    ]


def _prop_value(prop: dict[str, Any]) -> Any:
    return next((v for k, v in prop.items() if k.startswith("value")), None)


def _link_property_parents(concepts: dict[str, Concept]) -> None:
    for concept in concepts.values():
        parent = concept.properties.get("parent") or concept.properties.get("subsumedBy")
        if isinstance(parent, str) and parent in concepts and concept.parent is None:
            concept.parent = parent
            concepts[parent].children.append(concept.code)


class Terminology:
    """CodeSystems and ValueSets by canonical URL (and ValueSet by id), with cached expansions."""

    def __init__(self) -> None:
        self.code_systems: dict[str, CodeSystemEntry] = {}
        self.value_sets: dict[str, dict[str, Any]] = {}
        self._vs_by_id: dict[str, dict[str, Any]] = {}
        self._cs_by_id: dict[str, CodeSystemEntry] = {}
        self._former: dict[str, list[str]] = {}  # canonical URL -> the URLs it replaced
        self._current: dict[str, str] = {}  # former URL -> canonical URL
        self._expansions: dict[str, Expansion | None] = {}
        self._lock = threading.Lock()

    # ---- loading ----
    def add(self, resource: dict[str, Any], local: bool = False) -> None:
        rtype = resource.get("resourceType")
        if rtype == "CodeSystem":
            self.add_code_system(resource, local)
        elif rtype == "ValueSet":
            self.value_sets[resource["url"]] = resource
            if local or resource.get("id") not in self._vs_by_id:
                self._vs_by_id[resource.get("id", "")] = resource

    def add_code_system(self, resource: dict[str, Any], local: bool = False) -> None:
        concepts: dict[str, Concept] = {}
        _flatten(resource.get("concept", []), concepts, None)
        _link_property_parents(concepts)
        entry = CodeSystemEntry(
            resource["url"],
            resource.get("version"),
            resource.get("name"),
            resource.get("content", "complete"),
            resource.get("caseSensitive", True) is not False,
            resource,
            concepts,
        )
        if entry.content == "supplement":
            return
        self.code_systems[entry.url] = entry
        if local or resource.get("id") not in self._cs_by_id:
            self._cs_by_id[resource.get("id", "")] = entry
        for former in _former_urls(resource):
            self._current[former] = entry.url
            self._former.setdefault(entry.url, []).append(former)

    # ---- access ----
    def code_system(self, url_or_id: str) -> CodeSystemEntry | None:
        url = strip_version(url_or_id)
        found = self.code_systems.get(url) or self._cs_by_id.get(url)
        if found is None and url in self._current:
            found = self.code_systems.get(self._current[url])
        return found

    def value_set(self, url_or_id: str) -> dict[str, Any] | None:
        url = strip_version(url_or_id)
        return self.value_sets.get(url) or self._vs_by_id.get(url)

    def lookup(self, system: str, code: str) -> Concept | None:
        entry = self.code_system(system)
        return entry.find(code) if entry else None

    # ---- expansion ----
    def expand(self, url_or_id: str) -> Expansion | None:
        """The full local expansion, or None when it cannot be computed locally."""
        vs = self.value_set(url_or_id)
        if vs is None:
            return None
        url = vs["url"]
        if url in self._expansions:
            return self._expansions[url]
        with self._lock:
            if url not in self._expansions:
                self._expansions[url] = self._expand(vs, frozenset())
        return self._expansions[url]

    def _expand(self, vs: dict[str, Any], seen: frozenset[str]) -> Expansion | None:
        url = vs["url"]
        if url in seen:
            return None
        compose = vs.get("compose")
        items: dict[tuple[str, str], ExpansionItem] | None
        partial: set[str] = set()
        if compose:
            items = self._compose(compose, seen | {url}, partial)
        else:
            items = None
        if items is None and vs.get("expansion", {}).get("contains"):
            items = {}
            self._add_contains(vs["expansion"]["contains"], items)
        if items is None:
            return None
        pairs = frozenset(items) | {
            (former, c) for s, c in items for former in self._former.get(s, ())
        }
        codes = frozenset(c for _, c in items)
        return Expansion(url, tuple(items.values()), pairs, codes, not partial)

    def _add_contains(self, contains: list[dict], items: dict) -> None:
        for c in contains:
            if c.get("code") and c.get("system"):
                items[(c["system"], c["code"])] = ExpansionItem(
                    c["system"], c["code"], c.get("display"), c.get("version")
                )
            self._add_contains(c.get("contains", []), items)

    def _compose(self, compose: dict, seen: frozenset[str], partial: set[str]) -> dict | None:
        items: dict[tuple[str, str], ExpansionItem] = {}
        for inc in compose.get("include", []):
            part = self._include(inc, seen, partial)
            if part is None:
                return None
            items.update(part)
        for exc in compose.get("exclude", []):
            part = self._include(exc, seen, partial)
            if part is None:
                return None
            for key in part:
                items.pop(key, None)
        return items

    def _include(self, inc: dict, seen: frozenset[str], partial: set[str]) -> dict | None:
        result: dict[tuple[str, str], ExpansionItem] | None = None
        system = inc.get("system")
        if system:
            result = self._include_system(system, inc, partial)
            if result is None:
                return None
        for vs_url in inc.get("valueSet", []):
            vs = self.value_set(vs_url)
            sub = self._expand(vs, seen) if vs else None
            if sub is None:
                return None
            if not sub.complete:
                partial.add(sub.url)
            sub_items = {(i.system, i.code): i for i in sub.items}
            result = (
                sub_items if result is None else {k: v for k, v in result.items() if k in sub_items}
            )
        return result or {}

    def _include_system(self, system: str, inc: dict, partial: set[str]) -> dict | None:
        entry = self.code_systems.get(system)
        version = inc.get("version")
        if inc.get("concept"):
            out = {}
            for c in inc["concept"]:
                known = entry.find(c["code"]) if entry else None
                display = c.get("display") or (known.display if known else None)
                out[(system, c["code"])] = ExpansionItem(system, c["code"], display, version)
            return out
        if entry is None or entry.content not in ("complete", "fragment"):
            return None
        if entry.content == "fragment":
            partial.add(system)
        codes: Iterable[str] = entry.concepts.keys()
        for flt in inc.get("filter", []):
            selected = self._filter(entry, flt)
            if selected is None:
                return None
            codes = [c for c in codes if c in selected]
        return {
            (system, c): ExpansionItem(system, c, entry.concepts[c].display, entry.version)
            for c in codes
        }

    @staticmethod
    def _filter(entry: CodeSystemEntry, flt: dict) -> set[str] | None:
        op, prop, value = flt.get("op"), flt.get("property"), flt.get("value", "")
        if op in ("is-a", "descendent-of", "is-not-a") and prop == "concept":
            below = set(entry.descendants(value))
            if op == "is-a":
                return below | ({value} if value in entry.concepts else set())
            if op == "descendent-of":
                return below
            return set(entry.concepts) - below - {value}
        if op == "=":
            return {
                c.code
                for c in entry.concepts.values()
                if prop is not None and str(c.properties.get(prop)).lower() == str(value).lower()
            }
        if op == "regex" and prop == "code":
            rx = re.compile(value)
            return {c for c in entry.concepts if rx.fullmatch(c)}
        return None
