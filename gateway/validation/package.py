"""`gateway profiles pack`: our conformance resources as an installable FHIR NPM package.

package.tgz holds package/package.json, package/.index.json, every StructureDefinition (with
its snapshot), CodeSystem, ValueSet, ConceptMap, OperationDefinition, SearchParameter and
NamingSystem, and package/example/ with the examples.
The archive is reproducible: sorted entries, fixed timestamps.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from gateway.validation.locations import CANONICAL_BASE, PACKAGE_NAME, PACKAGE_VERSION
from gateway.validation.registry import ProfileRegistry, _json_files, read_json

_MTIME = 1_700_000_000  # fixed, so the same inputs give the same bytes


def package_manifest() -> dict[str, Any]:
    return {
        "name": PACKAGE_NAME,
        "version": PACKAGE_VERSION,
        "description": "China family-doctor contract service (家庭医生签约服务) profiles, "
        "code systems and value sets for FHIR R4",
        "canonical": CANONICAL_BASE,
        "url": CANONICAL_BASE,
        "fhirVersions": ["4.0.1"],
        "type": "fhir.ig",
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
        "author": "家庭医生签约服务 FHIR 网关项目组",
        "jurisdiction": "urn:iso:std:iso:3166#CN",
    }


def _index_entry(filename: str, res: dict[str, Any]) -> dict[str, Any]:
    entry = {"filename": filename, "resourceType": res["resourceType"], "id": res.get("id")}
    for key in ("url", "version", "kind", "type"):
        if key in res:
            entry[key] = res[key]
    return entry


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")


def package_files(registry: ProfileRegistry, profiles_dir: Path) -> dict[str, bytes]:
    """Archive path → content."""
    files: dict[str, bytes] = {}
    index = []
    for res in registry.local_resources():
        name = f"{res['resourceType']}-{res['id']}.json"
        files[f"package/{name}"] = _dump(res)
        index.append(_index_entry(name, res))
    example_index = []
    for path in _json_files(profiles_dir / "examples"):
        res = read_json(path)
        files[f"package/example/{path.name}"] = path.read_bytes()
        example_index.append(_index_entry(path.name, res))
    files["package/package.json"] = _dump(package_manifest())
    files["package/.index.json"] = _dump(
        {"index-version": 1, "files": sorted(index, key=lambda e: e["filename"])}
    )
    files["package/example/.index.json"] = _dump({"index-version": 1, "files": example_index})
    return files


def pack_profiles(out_path: Path, registry: ProfileRegistry | None = None) -> Path:
    """Write package.tgz (a gzipped tar with package/…) to out_path and return it."""
    registry = registry or ProfileRegistry.load()
    profiles_dir = registry.profiles_dir or Path("profiles")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(package_files(registry, profiles_dir).items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        out_path.open("wb") as fh,
        gzip.GzipFile(filename="", fileobj=fh, mode="wb", mtime=0) as gz,
    ):
        gz.write(raw.getvalue())
    return out_path
