"""The compact core definitions shipped in the package match the official bundles."""

from __future__ import annotations

from gateway.validation.build_core import build
from gateway.vocab.definitions import SHIPPED, load_shipped


def test_shipped_core_is_up_to_date(core_dir):
    assert SHIPPED.read_bytes() == build(core_dir), (
        "gateway/vocab/data/r4-core.json.gz is stale: python -m gateway.validation.build_core"
    )


def test_shipped_core_has_every_resource_definition_and_core_value_sets():
    shipped = load_shipped()
    urls = {sd["url"] for sd in shipped["structureDefinitions"]}
    for t in ("Patient", "CarePlan", "Observation", "HumanName", "Extension", "Element"):
        assert f"http://hl7.org/fhir/StructureDefinition/{t}" in urls
    vs = {r["url"] for r in shipped["terminology"]}
    assert "http://hl7.org/fhir/ValueSet/administrative-gender" in vs
    assert "http://hl7.org/fhir/ValueSet/observation-status" in vs
