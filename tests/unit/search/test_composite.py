"""Composite parameters: each element of the base yields its components' rows under one grp."""

from __future__ import annotations

from gateway.search.composite import component_types, served_components
from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.store.rows import QuantityRow, TokenRow

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def bp(systolic: float | None, diastolic: float) -> dict:
    def comp(code: str, value: float | None) -> dict:
        c: dict = {"code": {"coding": [{"system": LOINC, "code": code}], "text": "BP part"}}
        if value is not None:
            c["valueQuantity"] = {"value": value, "system": UCUM, "code": "mm[Hg]"}
        return c

    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [comp("8480-6", systolic), comp("8462-4", diastolic)],
    }


def groups(rows, param: str) -> dict[int, set[tuple]]:
    """grp → the (component index, value) pairs indexed for that element."""
    out: dict[int, set[tuple]] = {}
    for r in rows.token | rows.quantity:
        name, _, i = r.param.partition("$")
        if name == param:
            value = r.code if isinstance(r, TokenRow) else r.value
            out.setdefault(r.grp, set()).add((int(i), value))
    return out


def test_components_of_one_element_share_a_group(extractor: IndexExtractor) -> None:
    rows = extractor.extract(bp(150, 80))
    found = groups(rows, "component-code-value-quantity")
    assert sorted(found) == [0, 1]
    assert {frozenset(g) for g in found.values()} == {
        frozenset({(0, "8480-6"), (1, 150.0)}),
        frozenset({(0, "8462-4"), (1, 80.0)}),
    }
    # combo: the Observation itself (no value: nothing) and each component.
    assert len(groups(rows, "combo-code-value-quantity")) == 2
    # the Observation's own code has no value: code-value-quantity yields nothing
    assert groups(rows, "code-value-quantity") == {}


def test_an_element_missing_a_component_yields_no_rows(extractor: IndexExtractor) -> None:
    rows = extractor.extract(bp(None, 80))
    assert list(groups(rows, "component-code-value-quantity").values()) == [
        {(0, "8462-4"), (1, 80.0)}
    ]


def test_composite_rows_carry_no_text_and_ordinary_rows_no_group(
    extractor: IndexExtractor,
) -> None:
    rows = extractor.extract(bp(150, 80))
    composite = [r for r in rows.token if "$" in r.param]
    assert composite and all(r.text is None and r.grp is not None for r in composite)
    assert all(r.grp is None for r in rows.token | rows.quantity if "$" not in r.param)
    assert TokenRow("component-code", None, None, "bp part") in rows.token


def test_composite_on_the_resource_itself(extractor: IndexExtractor) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8302-2"}]},
        "valueQuantity": {"value": 170, "system": UCUM, "code": "cm"},
    }
    rows = extractor.extract(obs)
    assert groups(rows, "code-value-quantity") == {0: {(0, "8302-2"), (1, 170.0)}}
    q = next(r for r in rows.quantity if r.param == "code-value-quantity$1")
    assert isinstance(q, QuantityRow) and q.canon_code == "m" and q.canon_value == 1.7


def test_usage_context_range_component(extractor: IndexExtractor) -> None:
    vs = {
        "resourceType": "ValueSet",
        "status": "active",
        "useContext": [
            {
                "code": {
                    "system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                    "code": "age",
                },
                "valueRange": {
                    "low": {"value": 18, "unit": "a"},
                    "high": {"value": 65, "unit": "a"},
                },
            },
            {
                "code": {
                    "system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                    "code": "focus",
                },
                "valueCodeableConcept": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "73211009"}]
                },
            },
        ],
    }
    rows = extractor.extract(vs)
    q = [r for r in rows.quantity if r.param == "context-type-quantity$1"]
    assert [(r.low, r.high, r.grp) for r in q] == [(18.0, 65.0, 0)]
    assert groups(rows, "context-type-value") == {1: {(0, "focus"), (1, "73211009")}}


def test_served_composites(registry: SearchParamRegistry) -> None:
    obs = registry.for_type("Observation")
    assert component_types(registry, obs["component-code-value-quantity"]) == ("token", "quantity")
    assert component_types(registry, obs["code-value-date"]) == ("token", "date")
    # components reaching outside the element (%resource…) are not served
    seq = registry.for_type("MolecularSequence")
    assert component_types(registry, seq["chromosome-variant-coordinate"]) is None
    assert component_types(registry, obs["code"]) is None


def test_a_component_with_only_text_is_no_value(extractor: IndexExtractor) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "blood sugar"},
        "valueQuantity": {"value": 5.4},
    }
    rows = extractor.extract(obs)
    assert not [r for r in rows.token | rows.quantity if r.param.startswith("code-value-")]


def test_a_composite_whose_component_yields_nothing_is_not_served(
    registry: SearchParamRegistry, extractor: IndexExtractor
) -> None:
    # R4's DocumentReference `relationship` pairs the reference definition with `code`.
    rel = registry.get("DocumentReference", "relationship")
    assert rel is not None and served_components(registry, "DocumentReference", rel) is None
    doc = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"url": "http://x"}}],
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/d0"}}],
    }
    rows = extractor.extract(doc)
    assert not [r for r in rows.token | rows.reference if r.param.startswith("relationship$")]
    obs = registry.get("Observation", "code-value-quantity")
    assert obs is not None and served_components(registry, "Observation", obs) is not None
