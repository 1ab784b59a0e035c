"""Derive the compact R4 core definitions shipped with the gateway from the official bundles.

    python -m gateway.validation.build_core [--corpora DIR] [--check]

The validator needs the core StructureDefinitions (snapshots with cardinality, types,
bindings, constraints) and the core ValueSets/CodeSystems, on a fresh machine without the
corpora. Documentation-only fields (narrative, mappings, definitions, comments, xpath) are
dropped; everything the validator reads is kept. Output is deterministic (gzip mtime 0).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path
from typing import Any

import orjson

from gateway.validation.locations import CORE_FILES, corpora_dir
from gateway.vocab.definitions import SHIPPED

_DROP_TOP = {"text", "mapping", "differential", "contact", "description", "purpose", "copyright"}
_DROP_ELEMENT = {"definition", "comment", "requirements", "mapping", "alias", "example"}
_DROP_CONCEPT = {"definition"}


def _element(el: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in el.items() if k not in _DROP_ELEMENT}
    if "constraint" in out:
        out["constraint"] = [
            {k: v for k, v in c.items() if k != "xpath"} for c in out["constraint"]
        ]
    return out


def _structure_definition(sd: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in sd.items() if k not in _DROP_TOP}
    if "snapshot" in out:
        out["snapshot"] = {"element": [_element(e) for e in out["snapshot"]["element"]]}
    return out


def _concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in concepts:
        c = {k: v for k, v in c.items() if k not in _DROP_CONCEPT}
        if "concept" in c:
            c["concept"] = _concepts(c["concept"])
        out.append(c)
    return out


def _terminology(res: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in res.items() if k not in _DROP_TOP}
    if "concept" in out:
        out["concept"] = _concepts(out["concept"])
    return out


def _resources(path: Path) -> list[dict[str, Any]]:
    bundle = orjson.loads(path.read_bytes())
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def build(definitions: Path) -> bytes:
    sds = [
        _structure_definition(r)
        for name in CORE_FILES
        for r in _resources(definitions / name)
        if r.get("resourceType") == "StructureDefinition"
    ]
    terms = [
        _terminology(r)
        for r in _resources(definitions / "valuesets.json")
        if r.get("resourceType") in ("ValueSet", "CodeSystem")
    ]
    sds.sort(key=lambda r: r["url"])
    terms.sort(key=lambda r: (r["resourceType"], r["url"]))
    doc = {"structureDefinitions": sds, "terminology": terms}
    return gzip.compress(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), 9, mtime=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpora", type=Path, default=None)
    ap.add_argument("--check", action="store_true", help="exit 1 if the shipped file is stale")
    args = ap.parse_args()
    corpora = args.corpora or corpora_dir()
    if corpora is None:
        print("corpora not found: pass --corpora", file=sys.stderr)
        return 2
    data = build(corpora / "fhir-r4-definitions")
    if args.check:
        stale = not SHIPPED.exists() or SHIPPED.read_bytes() != data
        print("stale" if stale else "up to date")
        return 1 if stale else 0
    SHIPPED.write_bytes(data)
    print(f"wrote {SHIPPED} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
