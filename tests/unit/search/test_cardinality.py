"""Date parameters with one index row per resource (from the R4 core snapshots)."""

from __future__ import annotations

import pytest

from gateway.search.cardinality import one_date_row
from gateway.search.registry import SearchParamRegistry


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


@pytest.mark.parametrize(
    "rtype, code, one",
    [
        ("Encounter", "date", True),  # Encounter.period 0..1
        ("Observation", "date", True),  # effective[x] 0..1, a Timing is one row
        ("Patient", "birthdate", True),
        ("Procedure", "date", True),
        ("MedicationRequest", "authoredon", True),
        ("MedicationRequest", "date", False),  # dosageInstruction repeats
        ("Encounter", "location-period", False),  # location repeats
        ("Condition", "onset-date", False),  # a union: not followed
        ("Goal", "target-date", False),  # target repeats
        ("Immunization", "reaction-date", False),
    ],
)
def test_one_date_row(registry, rtype, code, one):
    param = registry.for_type(rtype)[code]
    assert one_date_row(rtype, param.expression) is one
