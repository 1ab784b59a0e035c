"""Per-StructureDefinition compiled trees, slice matchers and reference targets, cached.

Compilation happens once per canonical URL (under a lock); after that every lookup is a dict
read, so a Validator shared by threads does no repeated work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gateway.validation.checks import slice_matcher
from gateway.validation.elements import ElementNode, TypeRef, compile_tree
from gateway.validation.registry import CORE_SD, ProfileRegistry

Matcher = tuple[ElementNode, Callable[[Any], bool]]


class TreeCache:
    def __init__(self, registry: ProfileRegistry) -> None:
        self.registry = registry
        self._trees: dict[str, ElementNode | None] = {}
        self._matchers: dict[int, list[Matcher]] = {}
        self._targets: dict[TypeRef, frozenset[str] | None] = {}
        # (id(element), id(type root)) -> the element's invariants plus its type's
        self.merged: dict[tuple[int, int], tuple] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> ElementNode | None:
        """The compiled root of a StructureDefinition, or None when it is unknown."""
        try:
            return self._trees[url]
        except KeyError:
            pass
        with self._lock:
            if url not in self._trees:
                sd = self.registry.structure_definition(url)
                self._trees[url] = compile_tree(sd) if sd and "snapshot" in sd else None
        return self._trees[url]

    def type_root(self, code: str) -> ElementNode | None:
        return self.get(CORE_SD + code)

    def profile_type(self, url: str) -> str | None:
        sd = self.registry.structure_definition(url)
        return sd.get("type") if sd else None

    def matchers(self, node: ElementNode) -> list[Matcher]:
        key = id(node)
        found = self._matchers.get(key)
        if found is None:
            discs = node.slicing.discriminators if node.slicing else ()
            found = [(s, slice_matcher(s, discs, self.registry.terminology)) for s in node.slices]
            self._matchers[key] = found
        return found

    def target_types(self, tref: TypeRef) -> frozenset[str] | None:
        """Resource types a Reference may point to; None when anything goes."""
        if tref in self._targets:
            return self._targets[tref]
        types: set[str] = set()
        result: frozenset[str] | None = None
        for url in tref.target_profiles:
            name = url[len(CORE_SD) :] if url.startswith(CORE_SD) else self.profile_type(url)
            if name is None or name == "Resource":
                break
            types.add(name)
        else:
            result = frozenset(types) if types else None
        self._targets[tref] = result
        return result
