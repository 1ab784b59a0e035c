"""Where the validator finds its inputs: our profiles/ folder and the FHIR R4 core definitions.

The core definitions (the npm package hl7.fhir.r4.core, as JSON bundles) are looked up, in
order: `GATEWAY_FHIR_CORE_DIR`; `GATEWAY_CORPORA/fhir-r4-definitions`;
`<repo>/../shared/corpora/fhir-r4-definitions`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CANONICAL_BASE = "https://fhir.jtys.cn"
PACKAGE_NAME = "cn.jtys.fhir.r4"
PACKAGE_VERSION = "0.1.0"

CORE_FILES = ("profiles-types.json", "profiles-resources.json", "extension-definitions.json")


def default_profiles_dir() -> Path:
    return REPO_ROOT / "profiles"


def corpora_dir() -> Path | None:
    env = os.environ.get("GATEWAY_CORPORA")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "corpora"
    return candidate if candidate.is_dir() else None


def default_core_dir() -> Path | None:
    env = os.environ.get("GATEWAY_FHIR_CORE_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    corpora = corpora_dir()
    if corpora and (corpora / "fhir-r4-definitions" / "profiles-resources.json").is_file():
        return corpora / "fhir-r4-definitions"
    return None
