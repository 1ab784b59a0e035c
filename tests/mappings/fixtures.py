"""The fixture pairs under mappings/<name>/fixtures/: `<case>.input.json|csv` (one record or
several) and `<case>.expected.json`, one entry per record: the transaction Bundle the record
becomes (resources named `urn:uuid:<resource name>`), or the problems that reject it.
Contract cases also have `<case>.native.json`: the records read back from those resources.

`GATEWAY_UPDATE_FIXTURES=1 pytest tests/mappings` rewrites the expected files from the
engine's output; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.mapping.plan import MappedRecord, map_record, transaction_entries
from gateway.mapping.registry import DEFAULT_DIR, mappings
from gateway.mapping.sources import read_file

UPDATE = os.environ.get("GATEWAY_UPDATE_FIXTURES") == "1"


def cases() -> list[tuple[str, Path]]:
    out = []
    for spec_name in sorted(mappings()):
        for path in sorted((DEFAULT_DIR / spec_name / "fixtures").glob("*.input.*")):
            out.append((spec_name, path))
    return out


def case_id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].name.split('.input.')[0]}"


def sibling(path: Path, kind: str) -> Path:
    return path.with_name(path.name.split(".input.")[0] + f".{kind}.json")


def fixture_name(name: str) -> str:
    return f"urn:uuid:{name}"


def mapped(spec_name: str, path: Path) -> list[MappedRecord]:
    spec = mappings()[spec_name]
    return [
        map_record(spec, record, n, fixture_name) for n, record in enumerate(read_file(path), 1)
    ]


def rendering(record: MappedRecord) -> dict[str, Any]:
    """What a fixture expects of one record."""
    if not record.ok:
        return {
            "problems": [
                {"field": p.field, "code": p.code, "message": p.message} for p in record.problems
            ]
        }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": transaction_entries(record.entries, {}),
    }


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def check_or_update(path: Path, actual: Any) -> Any:
    """The expected content of `path`, or (updating) `actual`, written there."""
    if UPDATE:
        path.write_text(json.dumps(actual, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return actual
    return load(path)
