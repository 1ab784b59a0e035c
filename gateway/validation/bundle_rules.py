"""Bundle rules of R4 bundle.html that no invariant states (the reference validator checks them):

- an entry whose resource has an id has an absolute fullUrl (Bundle.entry.fullUrl: "The
  Absolute URL for the resource"), and a RESTful one ends with that type and id ("The fullUrl
  SHALL NOT disagree with the id in the resource");
- each navigation link relation (self, first, previous, next, last) at most once;
- a reference that resolves inside the bundle (bundle.html "Resolving references in Bundles")
  resolves to one entry: an unversioned reference to a fullUrl that several entries share (with
  different meta.versionId, as bdl-7 allows) is ambiguous, and a versioned one must find its
  version. History bundles hold several versions of one resource by design: not checked;
- in a searchset, a match has an id and, when the self link names a type, is of that type; an
  outcome entry is an OperationOutcome (Bundle.entry.search.mode).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Problem = tuple[str, str, dict[str, Any]]  # message id, FHIRPath, fields

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_RESTFUL = re.compile(
    r"^(?P<base>.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ONCE = ("self", "first", "previous", "prev", "next", "last")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def problems(bundle: dict[str, Any], path: str) -> list[Problem]:
    entries = [(i, e) for i, e in enumerate(_list(bundle.get("entry"))) if isinstance(e, dict)]
    out = _full_urls(entries, path) + _links(bundle, path)
    if bundle.get("type") != "history":
        out += _references(entries, path)
    if bundle.get("type") == "searchset":
        out += _search_entries(bundle, entries, path)
    return out


def _full_urls(entries: list[tuple[int, dict]], path: str) -> list[Problem]:
    out = []
    for i, entry in entries:
        url, resource = entry.get("fullUrl"), entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(url, str):
            continue
        rid = resource.get("id")
        if rid is None:
            continue
        if not _ABSOLUTE.match(url):
            out.append(("VAL-1100", f"{path}.entry[{i}].fullUrl", {"url": url[:100]}))
            continue
        restful = _RESTFUL.match(url) if url.startswith(("http:", "https:")) else None
        if restful and (restful["type"], restful["id"]) != (resource.get("resourceType"), rid):
            want = f"{resource.get('resourceType')}/{rid}"
            out.append(("VAL-1107", f"{path}.entry[{i}].fullUrl", {"url": url[:100], "id": want}))
    return out


def _links(bundle: dict[str, Any], path: str) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for j, link in enumerate(_list(bundle.get("link"))):
        relation = link.get("relation") if isinstance(link, dict) else None
        if relation in _ONCE:
            if relation in seen:
                out.append(("VAL-1101", f"{path}.link[{j}]", {"relation": relation}))
            seen.add(relation)
    return out


def _version(resource: Any) -> str | None:
    meta = resource.get("meta") if isinstance(resource, dict) else None
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _references(entries: list[tuple[int, dict]], path: str) -> list[Problem]:
    versions: dict[str, list[str | None]] = {}
    for _, entry in entries:
        url = entry.get("fullUrl")
        if isinstance(url, str) and _ABSOLUTE.match(url) and "resource" in entry:
            versions.setdefault(url, []).append(_version(entry["resource"]))
    if not versions:
        return []
    out = []
    for i, entry in entries:
        resource, url = entry.get("resource"), entry.get("fullUrl")
        restful = _RESTFUL.match(url) if isinstance(url, str) else None
        base = restful.group("base") or "" if restful else None
        for ref, where in _reference_values(resource, f"{path}.entry[{i}].resource"):
            target, _, version = ref.partition("/_history/")
            if not _ABSOLUTE.match(target):
                if base is None or not _RELATIVE.match(target):
                    continue  # not resolvable inside the bundle by the spec's rules
                target = base + target
            found = versions.get(target)
            if not found:
                continue  # outside the bundle
            if not version and len(found) > 1:
                out.append(("VAL-1102", where, {"reference": ref[:100], "count": len(found)}))
            elif version and version not in found:
                out.append(("VAL-1103", where, {"reference": ref[:100]}))
    return out


def _reference_values(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(Reference.reference, FHIRPath of the Reference) in a resource, nested ones excluded
    (a contained resource's references are its container's; an inner Bundle has its own)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref, path
        for key, value in node.items():
            if key in ("resource", "contained"):
                continue
            if isinstance(value, list):
                for k, item in enumerate(value):
                    yield from _reference_values(item, f"{path}.{key}[{k}]")
            elif isinstance(value, dict):
                yield from _reference_values(value, f"{path}.{key}")


def _search_entries(
    bundle: dict[str, Any], entries: list[tuple[int, dict]], path: str
) -> list[Problem]:
    searched = _searched_type(bundle)
    out = []
    for i, entry in entries:
        resource = entry.get("resource")
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        if not isinstance(resource, dict):
            continue
        where = f"{path}.entry[{i}].resource"
        rtype = resource.get("resourceType")
        if mode == "outcome":
            if rtype != "OperationOutcome":
                out.append(("VAL-1105", where, {"type": rtype}))
            continue
        if mode == "match":
            if resource.get("id") is None:
                out.append(("VAL-1104", where, {}))
            if searched and rtype != searched:
                out.append(("VAL-1106", where, {"type": rtype, "searched": searched}))
    return out


def _searched_type(bundle: dict[str, Any]) -> str | None:
    """The type a searchset's self link searched (`[base]/Patient?…`), None when it does not
    say (no self link, a system-level search)."""
    for link in _list(bundle.get("link")):
        if isinstance(link, dict) and link.get("relation") == "self":
            url = link.get("url")
            if not isinstance(url, str):
                return None
            head = url.split("?", 1)[0].rstrip("/")
            last = head.rsplit("/", 1)[-1]
            if last == "_search":
                last = head.rsplit("/", 2)[-2] if head.count("/") >= 1 else ""
            return last if re.fullmatch(r"[A-Z][A-Za-z]+", last) else None
    return None
