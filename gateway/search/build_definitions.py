"""Derive the compact shipped SearchParameter file from the FHIR R4 definition corpora.

    python -m gateway.search.build_definitions [--corpora DIR] [--out FILE]

Reads the official R4 ``search-parameters.json`` bundle and Medplum's rewrite of it (same
parameters, ``X as T`` rewritten to ``X.ofType(T)`` so a strict FHIRPath engine accepts them).
The official bundle decides *which* parameters exist and everything except the expressions;
where Medplum's ``expression`` (or a component's ``expression``) differs, Medplum's wins.
Medplum-only additions (3 non-R4 parameters) are left out: this gateway speaks plain R4.

Only the fields the registry needs are kept; output is sorted by url, one parameter per line,
so regenerating is deterministic and diffs stay readable.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "search-parameters.json"
OFFICIAL = Path("fhir-r4-definitions") / "search-parameters.json"
MEDPLUM = Path("fhir-r4-definitions") / "medplum-variant" / "search-parameters.json"

# Kept fields, in output order. Empty/absent ones are omitted.
FIELDS = (
    "url",
    "code",
    "name",
    "base",
    "type",
    "expression",
    "target",
    "modifier",
    "comparator",
    "multipleOr",
    "multipleAnd",
    "component",
    "xpathUsage",
)


def default_corpora() -> Path:
    env = os.environ.get("GATEWAY_CORPORA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry", []):
        res = entry.get("resource") or {}
        if res.get("resourceType") == "SearchParameter" and res.get("url"):
            out[res["url"]] = res
    return out


def compact(res: dict[str, Any]) -> dict[str, Any]:
    """Keep only the fields the registry reads (also used for custom SearchParameters)."""
    out: dict[str, Any] = {}
    for key in FIELDS:
        value = res.get(key)
        if value is None or value == [] or value == "":
            continue
        if key == "component":
            value = [
                {"definition": c.get("definition"), "expression": c.get("expression")}
                for c in value
            ]
        out[key] = value
    return out


def build(corpora: Path) -> list[dict[str, Any]]:
    official = _entries(corpora / OFFICIAL)
    medplum = _entries(corpora / MEDPLUM)
    params = []
    for url in sorted(official):
        res = dict(official[url])
        alt = medplum.get(url)
        if alt is not None:
            if alt.get("expression") and alt.get("expression") != res.get("expression"):
                res["expression"] = alt["expression"]
            if alt.get("component") and res.get("component"):
                by_def = {c.get("definition"): c for c in alt["component"]}
                res["component"] = [
                    {**c, "expression": by_def.get(c.get("definition"), c).get("expression")}
                    for c in res["component"]
                ]
        params.append(compact(res))
    return params


def dumps(params: list[dict[str, Any]]) -> str:
    lines = [json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in params]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", type=Path, default=default_corpora())
    ap.add_argument("--out", type=Path, default=DATA_FILE)
    args = ap.parse_args(argv)
    params = build(args.corpora)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(params), encoding="utf-8")
    print(f"wrote {len(params)} search parameters to {args.out}")


if __name__ == "__main__":
    main()
