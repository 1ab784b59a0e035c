"""Build-time snapshot generation: profiles/StructureDefinition → profiles/generated.

`python -m gateway.validation.generate` rewrites every snapshot; `--check` exits 1 when a
committed snapshot differs from a fresh one (the test suite runs the same check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gateway.validation.locations import default_core_dir, default_profiles_dir
from gateway.validation.registry import CORE_FILES, _bundle_resources, _json_files, read_json
from gateway.validation.snapshot import generate_snapshot, generation_order


def dumps(resource: dict[str, Any]) -> str:
    """The committed form: 2-space indent, UTF-8 Chinese as is, trailing newline."""
    return json.dumps(resource, ensure_ascii=False, indent=2) + "\n"


def core_structure_definitions(core_dir: Path) -> dict[str, dict[str, Any]]:
    sds: dict[str, dict[str, Any]] = {}
    for name in CORE_FILES:
        for res in _bundle_resources(core_dir / name):
            if res.get("resourceType") == "StructureDefinition":
                sds[res["url"]] = res
    return sds


def build_snapshots(profiles_dir: Path, core_dir: Path) -> dict[str, str]:
    """file name → text of every generated StructureDefinition."""
    sds = core_structure_definitions(core_dir)
    sources = [read_json(p) for p in _json_files(profiles_dir / "StructureDefinition")]
    out: dict[str, str] = {}
    for src in generation_order(sources):
        snap = generate_snapshot(src, sds.get)
        sds[src["url"]] = snap
        out[f"StructureDefinition-{src['id']}.json"] = dumps(snap)
    return out


def stale_snapshots(profiles_dir: Path, core_dir: Path) -> list[str]:
    """Names of generated files that are missing, different or orphaned."""
    fresh = build_snapshots(profiles_dir, core_dir)
    folder = profiles_dir / "generated"
    stale = [
        name
        for name, text in fresh.items()
        if not (folder / name).is_file() or (folder / name).read_text("utf-8") != text
    ]
    stale += [p.name for p in _json_files(folder) if p.name not in fresh]
    return sorted(stale)


def write_snapshots(profiles_dir: Path, core_dir: Path) -> list[str]:
    folder = profiles_dir / "generated"
    folder.mkdir(exist_ok=True)
    fresh = build_snapshots(profiles_dir, core_dir)
    for path in _json_files(folder):
        if path.name not in fresh:
            path.unlink()
    for name, text in fresh.items():
        (folder / name).write_text(text, "utf-8")
    return sorted(fresh)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    core = default_core_dir()
    if core is None:
        print("FHIR core definitions not found (GATEWAY_FHIR_CORE_DIR / GATEWAY_CORPORA)")
        return 2
    profiles = default_profiles_dir()
    if "--check" in args:
        stale = stale_snapshots(profiles, core)
        for name in stale:
            print(f"stale: {name}")
        return 1 if stale else 0
    for name in write_snapshots(profiles, core):
        print(f"wrote profiles/generated/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
