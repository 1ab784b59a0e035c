from __future__ import annotations

import threading

from gateway.validation.issues import operation_outcome
from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json

SD = "https://fhir.jtys.cn/StructureDefinition/"


def _example(name: str) -> dict:
    return read_json(default_profiles_dir() / "examples" / f"{name}.json")


def _errors(issues):
    return {(i.message_id, i.expression) for i in issues if i.is_error}


def test_outcome_has_codes_both_languages_and_fhirpath(validator):
    patient = _example("Patient-cn-wang-xiuying")
    patient["identifier"][0]["value"] = "410102195603120422"
    outcome = operation_outcome(validator.validate(patient))
    issue = outcome["issue"][0]
    assert outcome["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "error" and issue["code"] == "invariant"
    assert issue["details"]["coding"][0]["code"] == "VAL-1050"
    assert "居民身份证" in issue["details"]["text"]
    english = issue["details"]["_text"]["extension"][0]["extension"][1]["valueString"]
    assert "GB 11643" in english and english in issue["diagnostics"]
    assert issue["expression"] == ["Patient.identifier[0]"]


def test_all_clear_outcome(validator):
    outcome = operation_outcome(validator.validate(_example("Patient-cn-li-jianguo")))
    assert outcome["issue"][0]["severity"] == "information"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "VAL-1082"


def test_not_a_resource(validator):
    assert validator.validate([])[0].message_id == "VAL-1000"
    assert validator.validate({"resourceType": "Nope"})[0].message_id == "VAL-1012"


def test_modes(validator):
    patient = _example("Patient-cn-zhang-zihan")
    del patient["id"]
    assert not _errors(validator.validate(patient, mode="create"))
    assert ("VAL-1081", "Patient.id") in _errors(validator.validate(patient, mode="update"))
    assert validator.validate({"resourceType": "Patient", "gender": "x"}, mode="delete") == []


def test_explicit_profile_is_applied(core_validator):
    obs = _example("Observation-cn-hba1c-li")
    del obs["meta"]
    del obs["extension"]
    assert not _errors(core_validator.validate(obs))
    errors = _errors(core_validator.validate(obs, [SD + "cn-recognised-observation"]))
    assert ("VAL-1030", "Observation.extension") in errors


def test_default_profiles_are_configurable(registry, core_validator):
    from gateway.validation.validator import DefaultProfile, Validator

    synthea_like = {"resourceType": "Patient", "name": [{"family": "Smith", "given": ["Ann"]}]}
    assert not _errors(core_validator.validate(synthea_like))
    only_patients = Validator(registry, [DefaultProfile("Patient", SD + "cn-patient")])
    assert ("VAL-1002", "Patient.name[0].text") in _errors(only_patients.validate(synthea_like))


def test_non_contract_careplan_is_not_held_to_the_contract_profile(validator):
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/cn-wang-xiuying"},
    }
    assert not _errors(validator.validate(plan))


def test_bundle_entries_are_validated_with_their_profiles(validator):
    patient = _example("Patient-cn-wang-xiuying")
    patient["name"][0].pop("text")
    contract = _example("CarePlan-cn-contract-wang-2026")
    contract["subject"] = {"reference": "urn:uuid:7f1c2c9e-0f7e-4d5e-9a53-6a0c7b3a9a11"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7f1c2c9e-0f7e-4d5e-9a53-6a0c7b3a9a11",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:0b1e9c35-6a1d-4f3a-a7d4-5b0f3c1e8d22",
                "resource": contract,
                "request": {"method": "POST", "url": "CarePlan"},
            },
        ],
    }
    errors = _errors(validator.validate(bundle))
    assert errors == {("VAL-1002", "Bundle.entry[0].resource.name[0].text")}
    bundle["entry"][1]["resource"]["careTeam"] = [
        {"reference": "urn:uuid:7f1c2c9e-0f7e-4d5e-9a53-6a0c7b3a9a11"}
    ]
    errors = _errors(validator.validate(bundle))
    assert ("VAL-1060", "Bundle.entry[1].resource.careTeam[0]") in errors  # a Patient, not a team


def test_contained_resources_and_local_references(core_validator):
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "x"},
        "contained": [
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"text": "y"},
                "valueString": "z",
            }
        ],
        "result": [{"reference": "#o1"}],
    }
    assert not _errors(core_validator.validate(report))
    report["result"] = [{"reference": "#o2"}]
    errors = _errors(core_validator.validate(report))
    assert ("VAL-1050", "DiagnosticReport.result[0]") in errors  # ref-1
    assert ("VAL-1050", "DiagnosticReport") in errors  # dom-3: o1 no longer referenced


def test_primitive_extensions_and_nulls(core_validator):
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["A", None],
                "_given": [None, {"extension": [{"url": "urn:x", "valueString": "B"}]}],
            }
        ],
    }
    assert not _errors(core_validator.validate(patient))
    patient["name"][0]["_given"] = [None, None]
    assert ("VAL-1016", "Patient.name[0].given[1]") in _errors(core_validator.validate(patient))


def test_reference_type_element_must_agree(core_validator):
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/1", "type": "Group"},
    }
    assert ("VAL-1062", "Observation.subject") in _errors(core_validator.validate(obs))


def test_validator_is_shareable_across_threads(validator):
    resources = [_example("Patient-cn-wang-xiuying"), _example("CarePlan-cn-contract-wang-2026")]
    failures = []

    def work():
        for _ in range(30):
            for r in resources:
                if _errors(validator.validate(r)):
                    failures.append(r["id"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_strict_mode_from_constructor(registry):
    from gateway.validation.validator import Validator

    strict = Validator(registry, strict=True)
    patient = _example("Patient-cn-li-jianguo")
    patient["meta"]["profile"].append("http://example.org/StructureDefinition/other")
    assert ("VAL-1070", "Patient.meta.profile[1]") in _errors(strict.validate(patient))
