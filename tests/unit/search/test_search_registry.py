from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.search.extract import IndexExtractor
from gateway.search.registry import (
    SearchParameter,
    SearchParamRegistry,
    split_for_type,
    split_union,
)


def test_shipped_definitions_load(registry: SearchParamRegistry) -> None:
    assert len(registry.all()) > 1300
    obs = registry.for_type("Observation")
    assert obs["code"].type == "token"
    assert obs["subject"].type == "reference"
    assert "Patient" in obs["patient"].target
    assert registry.get("Patient", "birthdate").type == "date"
    assert registry.get("Patient", "nope") is None
    assert "Observation" in registry.resource_types()
    assert "Resource" not in registry.resource_types()


def test_base_parameters_in_every_type(registry: SearchParamRegistry) -> None:
    for rtype in ("Patient", "Observation", "Binary", "SomethingCustom"):
        params = registry.for_type(rtype)
        for code in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"):
            assert code in params, (rtype, code)
    assert registry.get("Patient", "_lastUpdated").expression == "Patient.meta.lastUpdated"
    assert registry.get("Observation", "_tag").expression == "Observation.meta.tag"


def test_union_split_per_type(registry: SearchParamRegistry) -> None:
    # clinical-date is one expression over 17 types; each type sees only its own part.
    assert registry.get("Observation", "date").expression == "Observation.effective"
    assert registry.get("Encounter", "date").expression == "Encounter.period"
    assert registry.get("RiskAssessment", "date").expression == (
        "RiskAssessment.occurrence.ofType(dateTime)"
    )
    # The unsplit definition is still available.
    full = registry.by_url("http://hl7.org/fhir/SearchParameter/clinical-date")
    assert full is not None and "Encounter.period" in full.expression
    # Multi-part for a single type keeps all of that type's parts.
    assert registry.get("Observation", "combo-code").expression == (
        "Observation.code | Observation.component.code"
    )


def test_medplum_expression_preferred(registry: SearchParamRegistry) -> None:
    # Official R4: '(Observation.value as Quantity) | (Observation.value as SampledData)'.
    expr = registry.get("Observation", "value-quantity").expression
    assert " as " not in expr
    assert "ofType(Quantity)" in expr


def test_split_union_respects_parens_and_strings() -> None:
    assert split_union("A.b | (A.c | A.d) | A.e.where(x='p|q')") == [
        "A.b",
        "(A.c | A.d)",
        "A.e.where(x='p|q')",
    ]
    assert split_for_type("Resource.meta.tag", "Patient") == ["Patient.meta.tag"]
    assert split_for_type("name | alias", "InsurancePlan") == [
        "InsurancePlan.name",
        "InsurancePlan.alias",
    ]
    assert split_for_type("Patient.name | Person.name", "Person") == ["Person.name"]


def test_composite_kept_with_components(registry: SearchParamRegistry) -> None:
    p = registry.get("Observation", "code-value-quantity")
    assert p is not None and p.type == "composite"
    assert len(p.component) == 2
    assert p.component[0].definition.endswith("/clinical-code")
    assert p.component[1].expression == "value.ofType(Quantity)"
    for c in p.component:
        assert registry.by_url(c.definition) is not None


def _custom(
    code: str, base: list[str], expression: str, type_: str = "token", url: str | None = None
) -> dict:
    return {
        "resourceType": "SearchParameter",
        "url": url or f"http://example.org/fhir/SearchParameter/{base[0]}-{code}",
        "name": code,
        "status": "active",
        "description": "test",
        "code": code,
        "base": base,
        "type": type_,
        "expression": expression,
    }


def test_custom_search_parameter_loaded_and_indexed(tmp_path: Path) -> None:
    sp_dir = tmp_path / "SearchParameter"
    sp_dir.mkdir()
    (sp_dir / "patient-key-group.json").write_text(
        json.dumps(
            _custom(
                "key-group",
                ["Patient"],
                "Patient.extension.where(url='http://example.org/key-group').value.ofType(CodeableConcept)",
            )
        ),
        encoding="utf-8",
    )
    (sp_dir / "not-a-search-param.json").write_text('{"resourceType": "ValueSet"}')
    reg = SearchParamRegistry.load(extra_dirs=[sp_dir])
    p = reg.get("Patient", "key-group")
    assert p is not None and p.source and p.source.endswith("patient-key-group.json")

    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "extension": [
            {
                "url": "http://example.org/key-group",
                "valueCodeableConcept": {
                    "coding": [{"system": "http://example.org/kg", "code": "elderly"}]
                },
            },
            {"url": "http://example.org/other", "valueCodeableConcept": {"text": "ignore"}},
        ],
    }
    # The where(url=…)/ofType pattern is compiled to the fast path, not fhirpathpy.
    assert IndexExtractor(reg).plan("Patient", "key-group").fallback == []
    for mode in ("fast", "fhirpath"):
        rows = IndexExtractor(reg, mode=mode).extract(patient)
        tokens = {(r.system, r.code) for r in rows.token if r.param == "key-group"}
        assert tokens == {("http://example.org/kg", "elderly")}, mode


def test_custom_overrides_same_code_and_base(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": _custom("family", ["Patient"], "Patient.name.text", "string")}
                ],
            }
        ),
        encoding="utf-8",
    )
    reg = SearchParamRegistry.load(extra_dirs=[tmp_path])
    assert reg.get("Patient", "family").expression == "Patient.name.text"
    # Other bases of the original parameter keep the R4 definition.
    assert reg.get("Practitioner", "family").expression == "Practitioner.name.family"
    rows = IndexExtractor(reg).extract(
        {"resourceType": "Patient", "name": [{"family": "Wang", "text": "Wang Fang"}]}
    )
    assert {r.exact for r in rows.string if r.param == "family"} == {"Wang Fang"}


def test_missing_extra_dir_is_ignored(tmp_path: Path) -> None:
    reg = SearchParamRegistry.load(extra_dirs=[tmp_path / "absent"])
    assert reg.get("Patient", "name") is not None


def test_broken_custom_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        SearchParamRegistry.load(extra_dirs=[tmp_path])
    (tmp_path / "bad.json").write_text(json.dumps({"resourceType": "SearchParameter"}))
    with pytest.raises(ValueError, match="lacks"):
        SearchParamRegistry.load(extra_dirs=[tmp_path])


def test_search_parameter_is_frozen(registry: SearchParamRegistry) -> None:
    p = registry.get("Patient", "name")
    assert isinstance(p, SearchParameter)
    with pytest.raises(AttributeError):
        p.code = "x"  # type: ignore[misc]


def test_care_date_parameters_are_date_parameters_of_compartment_types():
    from gateway.search.compartment import care_date_params, patient_compartment

    registry = SearchParamRegistry.load()
    assert care_date_params()
    for rtype, code in care_date_params().items():
        assert rtype in patient_compartment(), rtype
        p = registry.get(rtype, code)
        assert p is not None and p.type == "date", (rtype, code)


def test_a_chain_no_target_accepts_names_every_target():
    from gateway.search.request import parse_search
    from gateway.vocab.outcomes import OperationOutcomeError

    with pytest.raises(OperationOutcomeError) as err:
        parse_search(SearchParamRegistry.load(), "Observation", [("subject.bogus", "1")])
    text = err.value.issues[0].diagnostics
    assert "'bogus'" in text and all(t in text for t in ("Patient", "Group", "Device", "Location"))
