from __future__ import annotations

import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.operations import (
    ValidationFailed,
    check_write,
    parse_validate_body,
    raise_for_write,
    run_validate,
)
from gateway.validation.registry import read_json


def _example(name: str) -> dict:
    return read_json(default_profiles_dir() / "examples" / f"{name}.json")


def _codes(outcome):
    return [i["details"]["coding"][0]["code"] for i in outcome["issue"]]


def test_validate_parameters_body(validator):
    bad = _example("Patient-cn-wang-xiuying")
    bad["gender"] = "mail"
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": bad},
            {"name": "mode", "valueCode": "create"},
            {"name": "profile", "valueUri": "https://fhir.jtys.cn/StructureDefinition/cn-patient"},
        ],
    }
    outcome = run_validate(validator, body, resource_type="Patient")
    assert "VAL-1040" in _codes(outcome)


def test_validate_bare_resource_and_query_profile(validator):
    outcome = run_validate(validator, _example("Patient-cn-li-jianguo"), profile=None)
    assert _codes(outcome) == ["VAL-1082"]
    unknown = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    outcome = run_validate(validator, _example("Patient-cn-li-jianguo"), profile=unknown)
    assert outcome["issue"][0]["severity"] == "warning"


@pytest.mark.parametrize(
    "body, kwargs",
    [
        ({"resourceType": "Patient"}, {"mode": "bogus"}),
        ({"resourceType": "Patient"}, {"resource_type": "Observation"}),
    ],
)
def test_bad_validate_requests(body, kwargs):
    assert parse_validate_body(body, **kwargs).message_id == "VAL-1083"


def test_a_parameters_without_a_resource_parameter_is_itself_the_resource():
    body = {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "create"}]}
    request = parse_validate_body(body)
    assert request.resource is body
    assert parse_validate_body(body, resource_type="Parameters").resource is body
    given = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {}}]}
    assert parse_validate_body(given).resource == {}  # the operation's input


def test_write_checks(validator):
    ok = check_write(validator, _example("CarePlan-cn-contract-wang-2026"))
    assert ok.ok and ok.status == 200
    bad = _example("CarePlan-cn-contract-wang-2026")
    bad["status"] = "revoked"
    result = check_write(validator, bad)
    assert not result.ok and result.status == 422
    with pytest.raises(ValidationFailed) as err:
        raise_for_write(validator, bad)
    assert err.value.status == 422 and "VAL-1050" in _codes(err.value.outcome())


def test_warnings_do_not_block_writes(validator):
    patient = _example("Patient-cn-li-jianguo")
    patient["meta"]["profile"].append(
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    )
    warnings = raise_for_write(validator, patient)
    assert [w.message_id for w in warnings] == ["VAL-1070"]
