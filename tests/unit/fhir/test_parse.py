"""Structure: the R4 definitions judge every resource; errors are located by FHIRPath."""

from __future__ import annotations

from functools import cache

import pytest

from gateway.fhir.parse import check_envelope, fhirpath_of, is_resource_type, parse_json
from gateway.fhir.write_check import WriteCheck
from gateway.vocab.definitions import r4_resource_types
from gateway.vocab.outcomes import OperationOutcomeError


@cache
def _structure_check() -> WriteCheck:
    return WriteCheck("off", core=False)  # structure only: no profiles, no core rules


def validate_resource(resource, expected=None, where=""):
    _structure_check().check(resource, expected, where)


def test_fhirpath_of_locations():
    assert fhirpath_of("Patient", ("name", 0, "given", 1)) == "Patient.name[0].given[1]"
    assert fhirpath_of("Bundle.entry[2].resource", ("status",)) == "Bundle.entry[2].resource.status"


@pytest.mark.parametrize(
    "resource, expression",
    [
        ({"resourceType": "Patient", "birthDate": "2024-02-31"}, "Patient.birthDate"),
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "name": [{"given": ["a", 3]}]}, "Patient.name[0].given[1]"),
        ({"resourceType": "Patient", "colour": "red"}, "Patient.colour"),
        (
            {"resourceType": "Encounter", "status": "finished", "class": {"code": 1}},
            "Encounter.class.code",
        ),
        # Model libraries coerce these; FHIR JSON requires the JSON type (json.html §2.6.2).
        ({"resourceType": "Patient", "active": "true"}, "Patient.active"),
        (
            {"resourceType": "Patient", "multipleBirthInteger": "2"},
            "Patient.multipleBirth.ofType(integer)",
        ),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": "1.5"},
            },
            "Observation.value.ofType(Quantity).value",
        ),
        ({"resourceType": "Patient", "gender": 1}, "Patient.gender"),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "active": 1}}],
            },
            "Bundle.entry[0].resource.active",
        ),
        # Nested resources name their type; an unknown one is a 400, never a crash.
        (
            {"resourceType": "Patient", "contained": [{"resourceType": "Nope", "id": "x"}]},
            "Patient.contained[0].resourceType",
        ),
        (
            {"resourceType": "Patient", "contained": [{"id": "x"}]},
            "Patient.contained[0].resourceType",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "p", "resource": {"resourceType": "Nope"}}],
            },
            "Parameters.parameter[0].resource.resourceType",
        ),
        # FHIRPath names: a primitive's `_gender` extension object is `gender`, and two
        # values of one choice element are located at the choice element.
        (
            {"resourceType": "Patient", "_gender": {"extension": [{"url": "u", "valueString": 1}]}},
            "Patient.gender.extension[0].value.ofType(string)",
        ),
        (
            {"resourceType": "Patient", "name": [{"_given": [{"id": 5}]}]},
            "Patient.name[0].given[0].id",
        ),
        ({"resourceType": "Patient", "_colour": 1}, "Patient._colour"),  # unknown: as written
        (
            {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"},
            "Patient.deceased",
        ),
        (
            {
                "resourceType": "Patient",
                "extension": [{"url": "u", "valueString": "a", "valueBoolean": True}],
            },
            "Patient.extension[0].value",
        ),
    ],
)
def test_invalid_elements_are_located(resource, expression):
    with pytest.raises(OperationOutcomeError) as err:
        validate_resource(resource)
    assert err.value.status == 400
    assert expression in [e for i in err.value.issues for e in i.expression]


def test_bundle_prefix_is_kept():
    with pytest.raises(OperationOutcomeError) as err:
        validate_resource(
            {"resourceType": "Patient", "active": 1}, "Patient", "Bundle.entry[4].resource"
        )
    assert err.value.issues[0].expression == ("Bundle.entry[4].resource.active",)


def test_null_beside_primitive_extension_is_valid():
    ext = {"extension": [{"url": "u", "valueBoolean": True}]}
    validate_resource(
        {"resourceType": "Patient", "name": [{"given": ["三", None], "_given": [None, ext]}]}
    )


def test_malformed_json_and_non_objects():
    with pytest.raises(OperationOutcomeError) as err:
        parse_json(b'{"resourceType": ')
    assert err.value.status == 400 and err.value.issues[0].code == "structure"
    with pytest.raises(OperationOutcomeError):
        validate_resource([1, 2])
    with pytest.raises(OperationOutcomeError):
        validate_resource({"resourceType": "Nope"})


def test_every_r4_type_is_served_and_only_r4_types():
    types = r4_resource_types()
    assert len(types) == 146  # R4 4.0.1 resourcelist.html
    assert {"Patient", "CarePlan", "CareTeam", "ServiceRequest", "Task", "Bundle"} <= set(types)
    # The R4 types R4B dropped are served too.
    for t in ("MedicinalProduct", "SubstanceSpecification", "EffectEvidenceSynthesis"):
        assert is_resource_type(t)
    assert not is_resource_type("SubscriptionTopic")  # R4B-only, not R4
    assert "Resource" not in types and "DomainResource" not in types
    assert check_envelope({"resourceType": "RiskEvidenceSynthesis"}) == "RiskEvidenceSynthesis"


def test_primitive_arrays_and_their_extensions_align():
    # json.html: "given" and "_given" are parallel arrays, null padding either side.
    ext = {"extension": [{"url": "urn:x", "valueString": "B"}]}
    ok = {"resourceType": "Patient", "name": [{"given": ["三", None], "_given": [None, ext]}]}
    validate_resource(ok)
    bad = {"resourceType": "Patient", "name": [{"given": ["三"], "_given": [None, ext]}]}
    with pytest.raises(OperationOutcomeError) as err:
        validate_resource(bad)
    errors = [e for i in err.value.issues if i.severity == "error" for e in i.expression]
    assert errors == ["Patient.name[0].given"]


def test_parsed_numbers_keep_their_text_through_copies_and_pickles():
    import copy
    import pickle

    from gateway.vocab import json_io

    doc = parse_json(
        b'{"resourceType":"Basic","n":[0.0000001,1.50,123456789012345678901234567890]}'
    )
    for clone in (doc, copy.deepcopy(doc), pickle.loads(pickle.dumps(doc))):
        assert json_io.dumps(clone) == (
            b'{"resourceType":"Basic","n":[0.0000001,1.50,123456789012345678901234567890]}'
        )
