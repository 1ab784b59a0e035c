"""Shared fixtures for search tests: the registry and the corpora (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry


def corpora_dir() -> Path:
    env = os.environ.get("GATEWAY_CORPORA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "corpora").resolve()


@pytest.fixture(scope="session")
def corpora() -> Path:
    d = corpora_dir()
    if not (d / "fhir-r4-definitions").is_dir():
        pytest.skip(f"FHIR corpora not found at {d} (set GATEWAY_CORPORA to run corpus tests)")
    return d


@pytest.fixture(scope="session")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


@pytest.fixture(scope="session")
def extractor(registry: SearchParamRegistry) -> IndexExtractor:
    return IndexExtractor(registry)


@pytest.fixture(scope="session")
def fhirpath_extractor(registry: SearchParamRegistry) -> IndexExtractor:
    return IndexExtractor(registry, mode="fhirpath")
