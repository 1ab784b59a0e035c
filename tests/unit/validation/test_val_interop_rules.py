"""Rules the reference validator applies that no R4 invariant states, and the corrections that
make the gateway agree with it (bundle.html, datatypes.html, national identifiers)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.validation import Validator
from gateway.validation.checksums import id_card_check_char, uscc_check_char


def _errors(validator, resource, **options) -> list[tuple[str, str]]:
    return [
        (i.message_id, i.expression) for i in validator.validate(resource, **options) if i.is_error
    ]


def _id_card(first17: str) -> str:
    return first17 + id_card_check_char(first17)


# ---- bundles ----------------------------------------------------------------------------
def _bundle(kind: str, *entries: dict, **extra) -> dict:
    bundle = {"resourceType": "Bundle", "type": kind, **extra}
    if entries:
        bundle["entry"] = list(entries)
    return bundle


def test_a_resource_with_an_id_needs_an_absolute_full_url(core_validator):
    relative = _bundle(
        "collection", {"fullUrl": "Patient/1", "resource": {"resourceType": "Patient", "id": "1"}}
    )
    assert _errors(core_validator, relative) == [("VAL-1100", "Bundle.entry[0].fullUrl")]
    urn = _bundle(
        "collection",
        {
            "fullUrl": "urn:uuid:3f4c5a52-7c1e-4f1b-9a2e-1c2d3e4f5a6b",
            "resource": {"resourceType": "Patient"},
        },
    )
    assert _errors(core_validator, urn) == []


def test_a_restful_full_url_ends_with_the_resource_type_and_id(core_validator):
    wrong = _bundle(
        "collection",
        {
            "fullUrl": "http://x.org/fhir/Patient/2",
            "resource": {"resourceType": "Patient", "id": "1"},
        },
    )
    assert _errors(core_validator, wrong) == [("VAL-1107", "Bundle.entry[0].fullUrl")]
    right = _bundle(
        "collection",
        {
            "fullUrl": "http://x.org/fhir/Patient/1",
            "resource": {"resourceType": "Patient", "id": "1"},
        },
    )
    assert _errors(core_validator, right) == []


def test_navigation_links_occur_once(core_validator):
    links = [
        {"relation": r, "url": f"http://x.org/fhir/Patient?p={i}"}
        for i, r in enumerate(["self", "next", "self"])
    ]
    assert _errors(core_validator, _bundle("searchset", link=links)) == [
        ("VAL-1101", "Bundle.link[2]")
    ]


def test_a_reference_resolving_to_several_entries_is_ambiguous(core_validator):
    def version(v: str) -> dict:
        return {
            "fullUrl": "http://x.org/fhir/Patient/1",
            "resource": {"resourceType": "Patient", "id": "1", "meta": {"versionId": v}},
        }

    obs = {
        "fullUrl": "http://x.org/fhir/Observation/o",
        "resource": {
            "resourceType": "Observation",
            "id": "o",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/1"},
        },
    }
    doc = _bundle("collection", obs, version("1"), version("2"))
    assert _errors(core_validator, doc) == [("VAL-1102", "Bundle.entry[0].resource.subject")]
    obs["resource"]["subject"]["reference"] = "Patient/1/_history/3"
    assert _errors(core_validator, doc) == [("VAL-1103", "Bundle.entry[0].resource.subject")]
    obs["resource"]["subject"]["reference"] = "Patient/1/_history/2"
    assert _errors(core_validator, doc) == []
    obs["resource"]["subject"]["reference"] = "Patient/1"
    history = _bundle("history", version("1"), version("2"), obs)
    codes = [m for m, _ in _errors(core_validator, history)]
    assert "VAL-1102" not in codes  # a history holds versions side by side by design


def test_searchset_entries(core_validator):
    self_link = [{"relation": "self", "url": "http://x.org/fhir/Patient?name=a"}]
    no_id = _bundle(
        "searchset",
        {"resource": {"resourceType": "Patient"}, "search": {"mode": "match"}},
        link=self_link,
    )
    assert _errors(core_validator, no_id) == [("VAL-1104", "Bundle.entry[0].resource")]
    wrong_type = _bundle(
        "searchset",
        {
            "fullUrl": "http://x.org/fhir/Group/g",
            "resource": {"resourceType": "Group", "id": "g", "type": "person", "actual": True},
            "search": {"mode": "match"},
        },
        link=self_link,
    )
    assert _errors(core_validator, wrong_type) == [("VAL-1106", "Bundle.entry[0].resource")]
    outcome = _bundle(
        "searchset",
        {"resource": {"resourceType": "Patient"}, "search": {"mode": "outcome"}},
        link=self_link,
    )
    assert _errors(core_validator, outcome) == [("VAL-1105", "Bundle.entry[0].resource")]


# ---- data types -------------------------------------------------------------------------
def test_attachment_size_and_hash_agree_with_the_data(core_validator):
    data = "你好, FHIR".encode()
    attachment = {
        "contentType": "text/plain",
        "data": base64.b64encode(data).decode(),
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
    }
    doc = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": attachment}],
    }
    assert _errors(core_validator, doc) == []
    attachment["size"] = 100
    attachment["hash"] = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    assert _errors(core_validator, doc) == [
        ("VAL-1110", "DocumentReference.content[0].attachment.size"),
        ("VAL-1111", "DocumentReference.content[0].attachment.hash"),
    ]


@pytest.mark.parametrize(
    "system, ok",
    [
        ("http://loinc.org", True),
        ("urn:oid:2.16.156.10011.2.3.3.5", True),  # a national code system we do not hold
        ("loinc", False),
        ("Location!", False),
    ],
)
def test_coding_system_is_an_absolute_uri(core_validator, system, ok):
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": "x"}]},
    }
    assert (_errors(core_validator, obs) == []) is ok


def test_resource_ids_are_r4_ids(core_validator):
    assert _errors(core_validator, {"resourceType": "Patient", "id": "a" * 64}) == []
    assert _errors(core_validator, {"resourceType": "Patient", "id": "a" * 65}) == [
        ("VAL-1007", "Patient.id")
    ]
    contained = {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "org_1", "name": "x"}],
        "managingOrganization": {"reference": "#org_1"},
    }
    assert ("VAL-1007", "Patient.contained[0].id") in _errors(core_validator, contained)


def test_html_tags_in_strings_are_reported_and_refused_with_security_checks(
    registry, core_validator
):
    patient = {"resourceType": "Patient", "name": [{"text": "Standard <script>x()</script>"}]}
    issues = core_validator.validate(patient)
    assert [(i.severity, i.message_id) for i in issues if i.message_id == "VAL-1113"] == [
        ("information", "VAL-1113")
    ]
    strict = Validator(registry, default_profiles=(), security_checks=True)
    assert _errors(strict, patient) == [("VAL-1113", "Patient.name[0].text")]
    assert (
        _errors(strict, {"resourceType": "Patient", "name": [{"text": "BP < 140 and > 90"}]}) == []
    )


# ---- extensions -------------------------------------------------------------------------
def test_unknown_extensions(registry, core_validator):
    foreign = {
        "resourceType": "Patient",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/x", "valueString": "a"}],
    }
    issues = core_validator.validate(foreign)
    assert [(i.severity, i.message_id) for i in issues if i.message_id.startswith("VAL-107")] == [
        ("warning", "VAL-1073")
    ]
    refusing = Validator(registry, default_profiles=(), unknown_extensions="error")
    assert _errors(refusing, foreign) == [("VAL-1073", "Patient.extension[0]")]
    core_namespace = {
        "resourceType": "Patient",
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/no-such-extension", "valueString": "a"}
        ],
    }
    assert _errors(core_validator, core_namespace) == [("VAL-1075", "Patient.extension[0]")]


def test_a_contained_resource_referenced_from_an_extension_is_referenced(core_validator):
    """dom-3: a reference inside an extension counts, on the resource and on a primitive."""
    org = {"resourceType": "Organization", "id": "org", "name": "x"}
    ref = {"url": "http://example.org/ext", "valueReference": {"reference": "#org"}}
    assert (
        _errors(core_validator, {"resourceType": "Patient", "contained": [org], "extension": [ref]})
        == []
    )
    on_primitive = {
        "resourceType": "Patient",
        "contained": [org],
        "birthDate": "2000",
        "_birthDate": {"extension": [ref]},
    }
    assert _errors(core_validator, on_primitive) == []


# ---- invariants as the reference validator reads them -----------------------------------
def test_que_12_needs_enable_behavior_from_two_enable_when(core_validator):
    when = [{"question": "a", "operator": "exists", "answerBoolean": True}] * 2
    item = {"linkId": "b", "type": "string", "enableWhen": when}
    questionnaire = {"resourceType": "Questionnaire", "status": "draft", "item": [item]}
    assert ("VAL-1050", "Questionnaire.item[0]") in _errors(core_validator, questionnaire)
    item["enableBehavior"] = "all"
    assert _errors(core_validator, questionnaire) == []


@pytest.mark.parametrize(
    "start, end, ok",
    [
        ("2023-06-20", "2023-06-21T06:20:00Z", True),
        ("2023-06-21", "2023-06-21T06:20:00Z", False),  # equal at the common precision only
        ("2023-06-21T06:20:00Z", "2023-06-21T06:20:00Z", True),
        ("2023-06-22", "2023-06-21", False),
    ],
)
def test_per_1_needs_a_true_comparison(core_validator, start, end, ok):
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": start, "end": end},
    }
    assert (("VAL-1050", "Encounter.period") not in _errors(core_validator, encounter)) is ok


def test_parameter_parts_are_parameters(core_validator):
    nested = {
        "resourceType": "Parameters",
        "parameter": [{"name": "a", "part": [{"name": "b", "valueString": "x"}]}],
    }
    assert _errors(core_validator, nested) == []
    empty = {"resourceType": "Parameters", "parameter": [{"name": "a", "part": [{"name": "b"}]}]}
    assert _errors(core_validator, empty) == [("VAL-1050", "Parameters.parameter[0].part[0]")]


def test_a_contained_resource_may_refer_to_its_container(core_validator):
    org = {
        "resourceType": "Organization",
        "name": "x",
        "contained": [
            {"resourceType": "Location", "id": "l", "managingOrganization": {"reference": "#"}}
        ],
    }
    assert _errors(core_validator, org) == []
    alone = {"resourceType": "Location", "managingOrganization": {"reference": "#"}}
    assert ("VAL-1050", "Location.managingOrganization") in _errors(core_validator, alone)


# ---- national identifiers, wherever they appear -------------------------------------------
def test_resident_id_numbers_are_checked_on_any_resource(core_validator):
    card = _id_card("41010219560312042")
    good = {"system": "urn:oid:2.16.156.10011.1.3", "value": card}
    bad = {
        "system": "urn:oid:2.16.156.10011.1.3",
        "value": card[:-1] + ("0" if card[-1] != "0" else "1"),
    }
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"identifier": bad},
    }
    assert _errors(core_validator, obs) == [("VAL-1090", "Observation.subject.identifier.value")]
    obs["subject"]["identifier"] = good
    assert _errors(core_validator, obs) == []
    other = {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example.org/mrn", "value": "12345"}],
    }
    assert _errors(core_validator, other) == []  # no barrier for anyone else's identifiers


def test_a_persons_id_number_agrees_with_birth_date_and_gender(core_validator):
    card = _id_card("41010219560312041")  # born 1956-03-12, odd sex digit: male
    person = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": card}],
    }
    assert _errors(core_validator, {**person, "birthDate": "1956-03-12", "gender": "male"}) == []
    assert _errors(core_validator, {**person, "birthDate": "1956-03"}) == []  # to its precision
    assert _errors(core_validator, {**person, "birthDate": "1957-03-12", "gender": "female"}) == [
        ("VAL-1092", "Practitioner.identifier[0].value"),
        ("VAL-1093", "Practitioner.identifier[0].value"),
    ]


def test_unified_social_credit_codes_are_checked(core_validator):
    code = "91350100M000100Y4"
    code += uscc_check_char(code)
    org = {
        "resourceType": "Organization",
        "name": "x",
        "identifier": [{"system": "https://fhir.jtys.cn/sid/uscc", "value": code}],
    }
    assert _errors(core_validator, org) == []
    org["identifier"][0]["value"] = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert _errors(core_validator, org) == [("VAL-1091", "Organization.identifier[0].value")]


def test_the_cn_profile_reports_its_own_invariant_instead_of_the_generic_check(registry):
    from gateway.validation import CN_PROFILES

    cn = Validator(registry, default_profiles=CN_PROFILES)
    card = _id_card("41010219560312042")
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "urn:oid:2.16.156.10011.1.3",
                "value": card[:-1] + ("0" if card[-1] != "0" else "1"),
            }
        ],
        "name": [{"text": "王秀英", "family": "王", "given": ["秀英"]}],
        "gender": "female",
        "birthDate": "1956-03-12",
    }
    codes = [m for m, _ in _errors(cn, patient)]
    assert "VAL-1090" not in codes and "VAL-1050" in codes
