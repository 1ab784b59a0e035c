"""The mappings directory: `tables.yaml` (code tables every spec may use) and one folder per
mapping, `<name>/mapping.yaml` with its fixtures beside it. Everything is checked on load."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from gateway.mapping.spec import Spec, SpecError
from gateway.mapping.spec_load import load_spec
from gateway.mapping.tables import TableError, load_tables

# The repository's mappings/ (beside profiles/): specs are data shipped with the gateway.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "mappings"


def load_mappings(directory: Path = DEFAULT_DIR) -> dict[str, Spec]:
    tables_file = directory / "tables.yaml"
    raw = _yaml(tables_file) or {}
    if not isinstance(raw, dict):
        raise SpecError(f"{tables_file}: a mapping of table name → table")
    try:
        shared = load_tables(raw, str(tables_file))
    except TableError as exc:
        raise SpecError(str(exc)) from None
    specs: dict[str, Spec] = {}
    for path in sorted(directory.glob("*/mapping.yaml")):
        spec = load_spec(_yaml(path), str(path), shared)
        if spec.name != path.parent.name:
            raise SpecError(f"{path}: name '{spec.name}' must be its folder's, {path.parent.name}")
        specs[spec.name] = spec
    return specs


@lru_cache(maxsize=4)
def mappings(directory: Path = DEFAULT_DIR) -> dict[str, Spec]:
    """The loaded mappings, read once per process."""
    return load_mappings(directory)


def _yaml(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
