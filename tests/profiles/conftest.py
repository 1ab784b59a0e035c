"""Fixtures for validation tests: the registry needs the FHIR R4 core definitions corpus."""

from __future__ import annotations

import pytest

from gateway.validation.locations import default_core_dir


@pytest.fixture(scope="session")
def core_dir():
    found = default_core_dir()
    if found is None:
        pytest.skip(
            "FHIR R4 core definitions not found: needs ../shared/corpora/fhir-r4-definitions "
            "(or GATEWAY_CORPORA / GATEWAY_FHIR_CORE_DIR)"
        )
    return found


@pytest.fixture(scope="session")
def registry(core_dir):
    from gateway.validation.registry import ProfileRegistry

    return ProfileRegistry.load(core_dir=core_dir)


@pytest.fixture(scope="session")
def validator(registry):
    from gateway.validation.validator import Validator

    return Validator(registry)


@pytest.fixture(scope="session")
def core_validator(registry):
    from gateway.validation.validator import Validator

    return Validator(registry, default_profiles=())
