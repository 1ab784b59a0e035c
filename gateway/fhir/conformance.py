"""Our conformance resources (profiles/: StructureDefinitions with snapshots, CodeSystems,
ValueSets, ConceptMaps) are served like any other resource: installed into the store at
start-up, so read, search (`StructureDefinition?url=…`) and history just work."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.store.model import Write
from gateway.store.store import Store
from gateway.vocab.context import RequestContext
from gateway.vocab.outcomes import OperationOutcomeError


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    out = {k: v for k, v in resource.items() if k != "meta"}
    return {**out, "meta": meta} if meta else out


async def install_conformance(store: Store, resources: list[dict[str, Any]]) -> int:
    """Write what changed since the last start; returns how many resources were written."""
    repo = store.repository(RequestContext.system())
    keys = [(r["resourceType"], r["id"]) for r in resources]
    existing = await repo.read_many(keys)
    writes = []
    for res, key in zip(resources, keys, strict=True):
        stored = existing.get(key)
        if (
            stored
            and not stored.deleted
            and _content(orjson.loads(stored.content)) == _content(res)
        ):
            continue
        writes.append(Write(key[0], key[1], res, "PUT"))
    if not writes:
        return 0
    try:
        await repo.apply(writes)
    except OperationOutcomeError:
        return 0  # another replica installed them at the same moment
    return len(writes)
