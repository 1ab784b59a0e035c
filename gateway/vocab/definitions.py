"""The R4 (4.0.1) definitions shipped with the gateway: the compact core StructureDefinitions
and terminology (built by gateway.validation.build_core from the official bundles) and the
list of resource types. Validation judges with them and search reads cardinalities from them,
on a fresh machine without the corpora."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = DATA / "r4-core.json.gz"


def load_shipped() -> dict[str, list[dict[str, Any]]]:
    """{"structureDefinitions": [...], "terminology": [...]} (a fresh copy on every call)."""
    return orjson.loads(gzip.decompress(SHIPPED.read_bytes()))


@cache
def r4_resource_types() -> tuple[str, ...]:
    """Every R4 resource type, in the order of the spec's list."""
    lines = (DATA / "r4-resource-types.txt").read_text().splitlines()
    return tuple(n.strip() for n in lines if n.strip() and not n.startswith("#"))
