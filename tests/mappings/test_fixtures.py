"""Every fixture pair: the records of `<case>.input.*` map exactly to `<case>.expected.json`,
and every resource they become is valid under our profiles (the R4 rules, cn-patient,
cn-family-doctor-contract, …): the mappings produce what the gateway will accept."""

from __future__ import annotations

import pytest

from gateway.mapping.merge import merge
from gateway.mapping.plan import Current
from gateway.mapping.registry import load_mappings
from tests.mappings.fixtures import (
    case_id,
    cases,
    check_or_update,
    mapped,
    rendering,
    sibling,
)

CASES = cases()


def test_every_mapping_has_fixtures():
    names = {name for name, _ in CASES}
    assert names == set(load_mappings())


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fixture_maps_to_expected(case):
    spec_name, path = case
    actual = [rendering(record) for record in mapped(spec_name, path)]
    expected = check_or_update(sibling(path, "expected"), actual)
    assert actual == expected


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fixture_resources_are_valid(case, validator):
    """A resource that accumulates across records (the household Group) is checked as the
    records of the file leave it, in their order, as $ingest stores it."""
    spec_name, path = case
    stored: dict[str, Current] = {}
    for record in mapped(spec_name, path):
        if not record.ok:
            continue
        for p in record.entries:
            key = f"{p.type}?{p.query}"
            if p.spec.merge is not None:
                resource = merge(
                    stored[key].resource if key in stored else None, p.resource, p.spec.merge
                )
                stored[key] = Current("x", "1", resource)
            else:
                resource = p.resource
            errors = [i for i in validator.validate(resource) if i.severity == "error"]
            assert errors == [], f"record {record.number} {key}: {errors}"


def test_fixtures_cover_problems_and_csv():
    """The fixtures exercise rejections, CSV and GB18030, not only the happy path."""
    kinds = {path.suffix for _, path in CASES}
    assert ".csv" in kinds and ".json" in kinds
    rejected = [r for name, path in CASES for r in mapped(name, path) if not r.ok]
    assert {p.code for r in rejected for p in r.problems} >= {"GW-1700", "GW-1701", "GW-1702"}
    assert any(b"\xc0\xee" in path.read_bytes() for _, path in CASES if path.suffix == ".csv")
