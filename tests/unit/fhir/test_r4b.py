"""The fast fhir_core validators are bound to the R4B models and keep fhir_core's checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.fhir import r4b
from gateway.fhir.r4b import get_fhir_model_class


def _errors(rtype: str, doc: dict) -> list[dict]:
    with pytest.raises(ValidationError) as exc:
        get_fhir_model_class(rtype).model_validate({"resourceType": rtype, **doc})
    return exc.value.errors(include_url=False)


def test_replacements_are_bound_to_every_model() -> None:
    for rtype in ("Patient", "Observation", "Bundle"):
        validators = get_fhir_model_class(rtype).__pydantic_decorators__.model_validators
        before = validators["reject_null_complex_elements"].func
        after = validators["validate_after_model_construction"].func
        assert getattr(before, "__func__", before) is r4b._reject_null_complex_elements
        assert after is r4b._validate_after_model_construction


def test_null_in_a_list_of_complex_elements_is_rejected_with_its_location() -> None:
    errs = _errors("Patient", {"name": [{"family": "张"}, None]})
    assert [(e["loc"], e["type"]) for e in errs] == [(("name",), "list_type")]


def test_null_in_a_nested_list_is_located_under_its_parent() -> None:
    errs = _errors("Patient", {"contact": [{"telecom": [None]}]})
    assert any(e["loc"][:3] == ("contact", 0, "telecom") for e in errs), errs


def test_null_in_a_primitive_list_is_a_placeholder_and_allowed() -> None:
    model = get_fhir_model_class("Patient")
    doc = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["三", None],
                "_given": [
                    None,
                    {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
                ],
            }
        ],
    }
    assert model.model_validate(doc).name[0].given == ["三", None]


def test_missing_required_primitive_is_an_error_unless_an_extension_explains_it() -> None:
    errs = _errors("Observation", {"code": {"text": "x"}})
    missing = "model_field_validation.missing"
    assert [(e["loc"], e["type"]) for e in errs] == [(("status",), missing)]
    ext = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    get_fhir_model_class("Observation").model_validate(
        {"resourceType": "Observation", "code": {"text": "x"}, "_status": ext}
    )


def test_two_values_for_one_choice_element_are_rejected() -> None:
    errs = _errors(
        "Observation",
        {"status": "final", "code": {"text": "x"}, "valueString": "a", "valueBoolean": True},
    )
    assert "multiple" in errs[0]["msg"]


def test_a_required_choice_element_must_have_a_value() -> None:
    errs = _errors(
        "MedicationRequest",
        {"status": "active", "intent": "order", "subject": {"reference": "Patient/1"}},
    )
    assert "medication" in errs[0]["msg"]
    get_fhir_model_class("MedicationRequest").model_validate(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/1"},
            "medicationCodeableConcept": {"text": "二甲双胍"},
        }
    )


def test_pydantic_validates_fields_directly_without_the_custom_init() -> None:
    assert get_fhir_model_class("Patient").__pydantic_custom_init__ is False


def test_resource_type_must_match_the_model() -> None:
    errs = _errors("Observation", {"resourceType": "Patient"})
    assert errs[0]["type"] == "fhir-validation-wrong-resource-type"


def test_validation_leaves_the_input_as_written() -> None:
    doc = {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o", "name": "社区卫生服务中心"}],
        "managingOrganization": {"reference": "#o"},
    }
    before = repr(doc)
    get_fhir_model_class("Patient").model_validate(doc)
    assert repr(doc) == before


def test_direct_construction_still_checks_the_resource_type() -> None:
    model = get_fhir_model_class("Patient")
    assert model(resourceType="Patient", active=True).active is True
    with pytest.raises(ValidationError):
        model(resourceType="Observation")
