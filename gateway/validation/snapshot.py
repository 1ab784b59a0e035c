"""Snapshot generation: a differential StructureDefinition applied to its base's snapshot.

The algorithm (a subset of the HL7 generator, enough for our profiles and extensions):
1. start from a copy of the base snapshot;
2. for each differential element, find the snapshot element with the same id; when it is
   missing, make room: a slice (`a.b:s`) copies the sliced element and its children after
   the last existing slice; a child of a complex type (`a.identifier.system`) unrolls the
   type's own snapshot under its parent;
3. merge: constraints are appended, everything else the differential states replaces.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
Resolver = Callable[[str], dict[str, Any] | None]


class SnapshotError(ValueError):
    pass


def _split(element_id: str) -> list[str]:
    return element_id.split(".")


def _path_of(element_id: str) -> str:
    return ".".join(seg.split(":", 1)[0] for seg in _split(element_id))


class _Builder:
    def __init__(self, elements: list[dict[str, Any]], resolve: Resolver) -> None:
        self.elements = elements
        self.resolve = resolve
        self._reindex()

    def _reindex(self) -> None:
        self.index = {e["id"]: i for i, e in enumerate(self.elements)}

    def _subtree_end(self, element_id: str) -> int:
        """Index after the element, its children and its slices."""
        start = self.index[element_id]
        end = start + 1
        while end < len(self.elements):
            eid = self.elements[end]["id"]
            if eid.startswith(element_id + ".") or eid.startswith(element_id + ":"):
                end += 1
            else:
                break
        return end

    def ensure(self, element_id: str) -> int:
        if element_id in self.index:
            return self.index[element_id]
        segments = _split(element_id)
        if len(segments) < 2:
            raise SnapshotError(f"No root element '{element_id}'")
        last = segments[-1]
        if ":" in last:
            self._add_slice(element_id, ".".join(segments[:-1] + [last.split(":", 1)[0]]))
        else:
            parent = ".".join(segments[:-1])
            self.ensure(parent)
            self._unroll(parent)
        if element_id not in self.index:
            raise SnapshotError(f"Element '{element_id}' does not exist in the base")
        return self.index[element_id]

    def _add_slice(self, slice_id: str, sliced_id: str) -> None:
        self.ensure(sliced_id)
        start, end = self.index[sliced_id], self._subtree_end(sliced_id)
        base = self.elements[start]
        slice_name = slice_id.rsplit(":", 1)[1]
        head = copy.deepcopy(base)
        head.pop("slicing", None)
        head["id"], head["sliceName"], head["min"] = slice_id, slice_name, 0
        copies = [head]
        for el in self.elements[start + 1 : end]:
            if el["id"].startswith(sliced_id + "."):
                child = copy.deepcopy(el)
                child["id"] = slice_id + el["id"][len(sliced_id) :]
                copies.append(child)
        self.elements[end:end] = copies
        self._reindex()

    def _unroll(self, parent_id: str) -> None:
        parent = self.elements[self.index[parent_id]]
        if any(eid.startswith(parent_id + ".") for eid in self.index):
            return  # already has children
        source = self._children_source(parent)
        prefix_id, prefix_path = parent_id, parent["path"]
        root = source[0]["id"]
        children = []
        for el in source[1:]:
            child = copy.deepcopy(el)
            child["id"] = prefix_id + el["id"][len(root) :]
            child["path"] = prefix_path + el["path"][len(source[0]["path"]) :]
            children.append(child)
        at = self.index[parent_id] + 1
        self.elements[at:at] = children
        self._reindex()

    def _children_source(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        ref = parent.get("contentReference")
        if ref:
            target = ref.split("#", 1)[1]
            start = self.index[target]
            return self.elements[start : self._subtree_end(target)]
        types = parent.get("type", [])
        if len(types) != 1:
            raise SnapshotError(f"Cannot unroll '{parent['id']}': needs exactly one type")
        t = types[0]
        url = (t.get("profile") or [CORE_SD + t["code"]])[0]
        sd = self.resolve(url)
        if sd is None or "snapshot" not in sd:
            raise SnapshotError(f"Cannot unroll '{parent['id']}': no snapshot for {url}")
        return sd["snapshot"]["element"]


def _merge(target: dict[str, Any], diff: dict[str, Any]) -> None:
    for key, value in diff.items():
        if key in ("id", "path"):
            continue
        if key == "constraint":
            have = {c["key"] for c in target.get("constraint", [])}
            target.setdefault("constraint", []).extend(
                copy.deepcopy(c) for c in value if c["key"] not in have
            )
        elif key.startswith(("fixed", "pattern")):
            for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                del target[old]
            target[key] = copy.deepcopy(value)
        else:
            target[key] = copy.deepcopy(value)


def generate_snapshot(sd: dict[str, Any], resolve: Resolver) -> dict[str, Any]:
    """A copy of `sd` with `snapshot` computed from its base and differential."""
    base = resolve(sd["baseDefinition"])
    if base is None or "snapshot" not in base:
        raise SnapshotError(f"{sd['url']}: base {sd['baseDefinition']} has no snapshot")
    builder = _Builder(copy.deepcopy(base["snapshot"]["element"]), resolve)
    for diff in sd.get("differential", {}).get("element", []):
        element_id = diff.get("id") or diff["path"]
        if _path_of(element_id) != diff["path"]:
            raise SnapshotError(f"{sd['url']}: id '{element_id}' and path '{diff['path']}' differ")
        position = builder.ensure(element_id)
        _merge(builder.elements[position], diff)
    out = {k: copy.deepcopy(v) for k, v in sd.items() if k != "snapshot"}
    out["snapshot"] = {"element": builder.elements}
    return out


def generation_order(sds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Local profiles ordered so that a profile comes after a local base it derives from."""
    by_url = {sd["url"]: sd for sd in sds}
    ordered: list[dict[str, Any]] = []
    done: set[str] = set()

    def visit(sd: dict[str, Any], stack: tuple[str, ...]) -> None:
        if sd["url"] in done:
            return
        if sd["url"] in stack:
            raise SnapshotError(f"Cycle in baseDefinition at {sd['url']}")
        base = by_url.get(sd["baseDefinition"])
        if base is not None:
            visit(base, stack + (sd["url"],))
        done.add(sd["url"])
        ordered.append(sd)

    for sd in sorted(sds, key=lambda s: s["url"]):
        visit(sd, ())
    return ordered
