"""One record → the resources it becomes, each with its business key (the conditional-update
search that makes re-sending a record update, never duplicate) and where its values came from.

`transaction_entries` turns them into the entries of a FHIR transaction: `PUT
Type?identifier=sys|value` for each resource; for a resource that accumulates across records
(`merge`), the version merged with the stored one and written with `If-Match` on that version
(or created with `ifNoneExist`), so that concurrent writers never lose each other's items.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.mapping.merge import merge
from gateway.mapping.record import MISSING, Problem, read_record
from gateway.mapping.render import EMPTY, Locations, Renderer, Scope
from gateway.mapping.spec import ResourceSpec, Spec


@dataclass
class Planned:
    spec: ResourceSpec
    resource: dict[str, Any]
    full_url: str
    query: str | None  # identifier=sys|value
    locations: Locations
    known: str | None = None  # the id of the stored resource the query matches, once found

    @property
    def type(self) -> str:
        return self.spec.type


@dataclass
class Current:
    """The stored version a merged resource is written over."""

    id: str
    version: str
    resource: dict[str, Any]


@dataclass
class MappedRecord:
    number: int  # from 1, in the order of the source
    key: str | None  # the value of the spec's key field, to name the record in reports
    entries: list[Planned] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def new_full_url(name: str) -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def map_record(
    spec: Spec, record: Any, number: int, full_url: Callable[[str], str] = new_full_url
) -> MappedRecord:
    """`full_url(resource name)` names each resource in its transaction (fixtures name them
    after the spec's resources, so that expected bundles stay the same)."""
    values, problems = read_record(spec, record)
    key = values.get(spec.key_field) if spec.key_field else None
    out = MappedRecord(number, str(key) if key is not None else None, problems=problems)
    included = [r for r in spec.resources if r.when is None or r.when in values]
    full_urls = {r.name: full_url(r.name) for r in included}
    renderer = Renderer(spec, full_urls, problems)
    scope = Scope(values)
    for res in included:
        rendered = renderer.render(res.template, scope)
        if rendered.value is EMPTY:
            continue
        query = None
        if res.key is not None:
            filled = renderer.fill(res.key, scope, url=True)
            if filled is None:
                if not problems:  # otherwise a missing or unknown field already says why
                    problems.append(
                        Problem(None, f"the {res.type} has no business key ({res.key})", MISSING)
                    )
                continue
            query = filled[0]
        out.entries.append(
            Planned(res, rendered.value, full_urls[res.name], query, rendered.locations)
        )
    return out


def transaction_entries(
    planned: list[Planned],
    current: Mapping[str, Current | None],
    targets: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Bundle entries for the planned resources; `current` holds, by full URL, the stored
    version of each merged resource (None: none stored yet); `targets` what searches in
    references were found to name (fullUrl or Type/id). Resources are copies: the transaction
    rewrites its links in place, and a retried record starts from the plan."""
    entries = []
    for p in planned:
        entry: dict[str, Any] = {"fullUrl": p.full_url}
        rule = p.spec.merge
        if rule is None:
            entry["resource"] = copy.deepcopy(p.resource)
            if p.known is not None:  # stored already: updated by its id
                entry["resource"]["id"] = p.known
                entry["request"] = {"method": "PUT", "url": f"{p.type}/{p.known}"}
            else:
                url = f"{p.type}?{p.query}" if p.query else p.type
                entry["request"] = {"method": "PUT" if p.query else "POST", "url": url}
        else:
            now = current.get(p.full_url)
            entry["resource"] = merge(
                now.resource if now else None, copy.deepcopy(p.resource), rule
            )
            if now is not None:
                entry["resource"]["id"] = now.id
                entry["request"] = {
                    "method": "PUT",
                    "url": f"{p.type}/{now.id}",
                    "ifMatch": f'W/"{now.version}"',
                }
            else:
                entry["request"] = {"method": "POST", "url": p.type, "ifNoneExist": p.query}
        if targets:
            _retarget(entry["resource"], targets)
        entries.append(entry)
    return entries


def _retarget(node: Any, targets: Mapping[str, str]) -> None:
    """References whose search was resolved: the literal reference, in place (on a copy)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in targets:
            node["reference"] = targets[ref]
        for value in node.values():
            if isinstance(value, dict | list):
                _retarget(value, targets)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, dict | list):
                _retarget(value, targets)


def coalesce(records: list[MappedRecord]) -> list[tuple[MappedRecord, Planned]]:
    """Several records' resources in one transaction: resources that accumulate are merged
    into one entry per key; any other resource keyed twice is the later record's problem (two
    records for one contract cannot both be applied at once). The plans are left as they
    were: what is merged here is a copy."""
    planned: list[tuple[MappedRecord, Planned]] = []
    by_key: dict[tuple[str, str], Planned] = {}
    rewrite: dict[str, str] = {}
    for record in records:
        for p in record.entries:
            key = (p.type, p.query or p.full_url)
            first = by_key.get(key)
            if first is None:
                by_key[key] = p = replace(p)
                planned.append((record, p))
                continue
            if p.spec.merge is None:
                record.problems.append(
                    Problem(None, f"another record of this request also writes {key[0]}?{key[1]}")
                )
                continue
            first.resource = merge(first.resource, p.resource, p.spec.merge)
            rewrite[p.full_url] = first.full_url
    if rewrite:
        for _, p in planned:
            p.resource = _rewrite(p.resource, rewrite)
    return planned


def conflicts(records: list[MappedRecord]) -> bool:
    """Whether two of the records write one resource that does not accumulate."""
    seen: set[tuple[str, str]] = set()
    for record in records:
        for p in record.entries:
            if p.spec.merge is None and p.query:
                if (p.type, p.query) in seen:
                    return True
                seen.add((p.type, p.query))
    return False


def _rewrite(node: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite(v, urls) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, urls) for v in node]
    if isinstance(node, str):
        return urls.get(node, node)
    return node
