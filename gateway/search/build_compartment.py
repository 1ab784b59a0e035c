"""Derive two small data files from the R4 definitions corpus (run once; output is shipped):

    python -m gateway.search.build_compartment [--corpora DIR]

- ``data/patient-compartment.json``: resource type → the search parameters that put a resource
  in a Patient's compartment (CompartmentDefinition ``patient``), for Patient $everything.
- ``data/elements.json``: resource type → top-level elements that are in the summary
  (``isSummary``) and that are mandatory (``min > 0``), for ``_summary`` and ``_elements``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
COMPARTMENT_FILE = DATA / "patient-compartment.json"
ELEMENTS_FILE = DATA / "elements.json"


def compartment(bundle: dict[str, Any]) -> dict[str, list[str]]:
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "CompartmentDefinition" and r["id"] == "patient":
            return {x["code"]: x["param"] for x in r["resource"] if x.get("param")}
    raise ValueError("no patient CompartmentDefinition")


def elements(bundle: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] != "StructureDefinition" or r.get("kind") != "resource":
            continue
        if r.get("derivation") == "constraint":
            continue
        summary, mandatory = [], []
        for el in r["snapshot"]["element"]:
            parts = el["path"].split(".")
            if len(parts) != 2:
                continue
            name = parts[1].replace("[x]", "")
            if el.get("isSummary"):
                summary.append(name)
            if int(el.get("min") or 0) > 0:
                mandatory.append(name)
        out[r["id"]] = {"summary": summary, "mandatory": mandatory}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    default = os.environ.get("GATEWAY_CORPORA", "/work/shared/corpora")
    ap.add_argument("--corpora", type=Path, default=Path(default))
    args = ap.parse_args()
    path = args.corpora / "fhir-r4-definitions" / "profiles-resources.json"
    bundle = json.loads(path.read_text(encoding="utf-8"))
    COMPARTMENT_FILE.write_text(
        json.dumps(compartment(bundle), indent=0, sort_keys=True, ensure_ascii=False) + "\n"
    )
    ELEMENTS_FILE.write_text(
        json.dumps(elements(bundle), sort_keys=True, separators=(",", ":")) + "\n"
    )


if __name__ == "__main__":
    main()
