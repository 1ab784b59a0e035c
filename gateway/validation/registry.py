"""ProfileRegistry: every StructureDefinition, CodeSystem and ValueSet the validator knows.

Besides those, our folder's ConceptMaps, OperationDefinitions, SearchParameters and
NamingSystems (one per identifier system we define) are kept to be installed and packed.

Loaded once at start-up from the R4 core definition bundles and our profiles/ folder. Our
profiles are authored as differentials in profiles/StructureDefinition/; their snapshots are
committed in profiles/generated/ (`python -m gateway.validation.snapshot` rewrites them; a test
fails when one is stale). A generated file whose differential no longer matches its source is
regenerated in memory at load, so a running gateway never validates against an old snapshot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gateway.validation.locations import (
    CANONICAL_BASE,
    CORE_FILES,
    default_profiles_dir,
)
from gateway.validation.snapshot import generate_snapshot, generation_order
from gateway.validation.terminology import Terminology, strip_version
from gateway.vocab.definitions import load_shipped

log = logging.getLogger(__name__)
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
# Our conformance resources, installed into the store at start-up and served like any other.
LOCAL_TYPES = (
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "OperationDefinition",
    "SearchParameter",
    "NamingSystem",
)


class RegistryError(RuntimeError):
    pass


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _bundle_resources(path: Path) -> Iterator[dict[str, Any]]:
    for entry in read_json(path).get("entry", []):
        if "resource" in entry:
            yield entry["resource"]


def _json_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _core_definitions(
    core_dir: Path | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Core StructureDefinitions and ValueSets/CodeSystems: from the official bundles when a
    folder is given (GATEWAY_FHIR_CORE_DIR), else from the compact copy shipped in the package
    (gateway/validation/build_core.py), so a fresh machine needs no corpora."""
    core = core_dir or (Path(env) if (env := os.environ.get("GATEWAY_FHIR_CORE_DIR")) else None)
    if core is None:
        shipped = load_shipped()
        return shipped["structureDefinitions"], shipped["terminology"]
    if not (core / "profiles-resources.json").is_file():
        raise RegistryError(f"FHIR R4 core definitions not found in {core}")
    sds = [
        res
        for name in CORE_FILES
        for res in _bundle_resources(core / name)
        if res.get("resourceType") == "StructureDefinition"
    ]
    return sds, list(_bundle_resources(core / "valuesets.json"))


def _snapshot_matches_source(generated: dict[str, Any], source: dict[str, Any]) -> bool:
    stripped = {k: v for k, v in generated.items() if k != "snapshot"}
    return stripped == source


class ProfileRegistry:
    """Read-only after construction, so one instance is safely shared by threads."""

    def __init__(
        self,
        structure_definitions: dict[str, dict[str, Any]],
        terminology: Terminology,
        local: dict[str, list[dict[str, Any]]],
        profiles_dir: Path | None = None,
    ) -> None:
        self._sds = structure_definitions
        self.terminology = terminology
        self.local = local  # resourceType -> our conformance resources (snapshots included)
        self.profiles_dir = profiles_dir
        self.canonical_base = CANONICAL_BASE
        self._local_systems = frozenset(cs["url"] for cs in local.get("CodeSystem", []))
        self._core_types = {
            sd["type"]: sd
            for url, sd in structure_definitions.items()
            if url == CORE_SD + sd["type"]
        }

    # ---- loading ----
    @classmethod
    def load(
        cls, profiles_dir: Path | None = None, core_dir: Path | None = None
    ) -> ProfileRegistry:
        core_sds, core_terms = _core_definitions(core_dir)
        sds = {res["url"]: res for res in core_sds}
        terminology = Terminology()
        for res in core_terms:
            terminology.add(res)
        folder = profiles_dir or default_profiles_dir()
        local = load_local(folder, sds, terminology)
        return cls(sds, terminology, local, folder)

    # ---- structure definitions ----
    def structure_definition(self, url: str) -> dict[str, Any] | None:
        return self._sds.get(strip_version(url))

    def core_definition(self, type_name: str) -> dict[str, Any] | None:
        return self._core_types.get(type_name)

    def is_resource_type(self, name: str) -> bool:
        sd = self._core_types.get(name)
        return sd is not None and sd.get("kind") == "resource" and not sd.get("abstract", False)

    def is_local(self, url: str) -> bool:
        """Ours: under our canonical base, or one of our code systems (the national ones are
        identified by their WS/T 500 OIDs)."""
        url = strip_version(url)
        return url.startswith(self.canonical_base + "/") or url in self._local_systems

    def local_resources(self) -> Iterator[dict[str, Any]]:
        for rtype in LOCAL_TYPES:
            yield from self.local.get(rtype, [])

    def find(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        """Our conformance resources of a type matching every given element value (url, id…)."""
        out = []
        for res in self.local.get(resource_type, []):
            if all(
                strip_version(params[k]) == res.get(k) or params[k] == res.get(k) for k in params
            ):
                out.append(res)
        return out


def load_local(
    folder: Path, sds: dict[str, dict[str, Any]], terminology: Terminology
) -> dict[str, list[dict[str, Any]]]:
    """Read profiles/: terminology first, then StructureDefinitions with their snapshots."""
    local: dict[str, list[dict[str, Any]]] = {}
    for sub in ("CodeSystem", "ValueSet", "ConceptMap"):
        for path in _json_files(folder / sub):
            res = read_json(path)
            local.setdefault(sub, []).append(res)
            terminology.add(res, local=True)
    for sub in ("OperationDefinition", "SearchParameter", "NamingSystem"):
        for path in _json_files(folder / sub):
            local.setdefault(sub, []).append(read_json(path))
    sources = [read_json(p) for p in _json_files(folder / "StructureDefinition")]
    generated = {res["url"]: res for res in map(read_json, _json_files(folder / "generated"))}
    for src in generation_order(sources):
        snap = generated.get(src["url"])
        if snap is None or not _snapshot_matches_source(snap, src):
            log.warning("Snapshot of %s is missing or stale: generating it", src["url"])
            snap = generate_snapshot(src, sds.get)
        sds[src["url"]] = snap
        local.setdefault("StructureDefinition", []).append(snap)
    return local
