"""fhirclient 4.x (SMART on FHIR's Python client, R4 models) against a live gateway.

fhirclient parses every response into its R4 model classes, strictly: an element the R4
definition does not have, a wrong JSON type or a missing required element raises
FHIRValidationError, so a response that parses is structurally R4.
"""

from __future__ import annotations

import warnings

import pytest
import requests
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException

from tests.clients.content import (
    HEALTH_RECORD,
    HEART_RATE,
    MRN,
    bare_patient,
    chinese_patient,
    heart_rate,
    standard_patient,
    transaction,
)


def create(resource_class, jsondict: dict, server) -> str:
    """`Resource(jsondict).create(server)`; returns the id the server assigned."""
    response = resource_class(jsondict).create(server)
    assert response is not None, "the create response has no body"
    created = resource_class(response)  # the returned representation parses as R4
    assert created.id
    return created.id


def search_ids(resource_class, struct: dict, server) -> set[str]:
    """The ids a search finds, over every page (`perform_resources_iter` follows next links)."""
    return {r.id for r in resource_class.where(struct=struct).perform_resources_iter(server)}


# --- CapabilityStatement -----------------------------------------------------------------------
def test_capability_statement(smart, wire):
    assert smart.prepare() is True
    assert wire.last("GET").request.url.endswith("/fhir/metadata")
    assert wire.last("GET").status_code == 200
    assert smart.ready

    statement = smart.server.capabilityStatement
    assert isinstance(statement, CapabilityStatement)
    statement.as_json()  # re-serialising checks the required elements are all there
    assert statement.status == "active"
    assert statement.kind == "instance"
    assert statement.fhirVersion == "4.0.1"
    assert statement.date is not None
    assert {"json", "application/fhir+json"} & set(statement.format)

    [rest] = statement.rest
    assert rest.mode == "server"
    by_type = {r.type: r for r in rest.resource}
    assert {"Patient", "Observation", "Encounter", "Condition"} <= set(by_type)

    patient = by_type["Patient"]
    interactions = {i.code for i in patient.interaction}
    assert {"read", "vread", "update", "delete", "create", "search-type"} <= interactions
    assert {"history-instance"} <= interactions
    params = {p.name: p.type for p in patient.searchParam}
    assert params["name"] == "string"
    assert params["identifier"] == "token"
    assert params["birthdate"] == "date"
    assert params["family"] == "string"
    assert params["gender"] == "token"
    assert patient.versioning in ("versioned", "versioned-update")
    assert patient.conditionalCreate is True

    observation = by_type["Observation"]
    assert "Observation:subject" in (observation.searchInclude or [])
    assert {"subject", "code", "date", "patient"} <= {p.name for p in observation.searchParam}
    assert "transaction" in {i.code for i in rest.interaction or []}


# --- create and read ---------------------------------------------------------------------------
def test_create_and_read_bare_standard_patient(smart):
    smart.prepare()
    patient_id = create(Patient, bare_patient(), smart.server)

    patient = Patient.read(patient_id, smart.server)
    assert patient.id == patient_id
    assert patient.meta.versionId == "1"
    assert patient.name[0].family == "Smith"
    assert patient.name[0].given == ["John"]
    assert patient.gender == "male"
    assert patient.birthDate.isostring == "1970-01-01"


def test_create_and_read_standard_patient(smart, wire):
    smart.prepare()
    patient_id = create(Patient, standard_patient("Smith", "John", mrn="MRN-0002"), smart.server)
    post = wire.last("POST")
    assert post.status_code == 201
    assert post.headers["Location"].endswith(f"/Patient/{patient_id}/_history/1")

    patient = Patient.read(patient_id, smart.server)
    assert patient.identifier[0].system == MRN
    assert patient.identifier[0].value == "MRN-0002"
    assert patient.identifier[0].type.coding[0].code == "MR"
    assert patient.address[0].city == "Boston"
    assert patient.active is True


def test_create_and_read_chinese_patient(smart, wire):
    smart.prepare()
    record = "11010100200300122"
    patient_id = create(Patient, chinese_patient("张", "三", record=record), smart.server)
    assert wire.last("POST").status_code == 201

    patient = Patient.read(patient_id, smart.server)
    assert wire.last("GET").headers["ETag"] == 'W/"1"'
    assert patient.name[0].text == "张三"
    assert patient.name[0].family == "张"
    assert patient.name[0].given == ["三"]
    assert patient.identifier[0].system == HEALTH_RECORD
    assert patient.identifier[0].value == record
    assert patient.address[0].text == "北京市东城区东华门街道1号"
    assert patient.birthDate.isostring == "1980-05-12"


def test_read_unknown_patient(smart, wire):
    smart.prepare()
    with pytest.raises(FHIRNotFoundException):
        Patient.read("no-such-patient", smart.server)
    assert wire.last("GET").status_code == 404


# --- search ------------------------------------------------------------------------------------
def test_search_chinese_patients(smart):
    smart.prepare()
    server = smart.server
    zhang_san = create(Patient, chinese_patient("张", "三", "1980-05-12", "male"), server)
    zhang_wei = create(Patient, chinese_patient("张", "伟", "1992-03-04", "female"), server)
    li_si = create(Patient, chinese_patient("李", "四", "1975-11-30", "male"), server)
    record = Patient.read(zhang_wei, server).identifier[0].value

    # perform_resources() (deprecated in fhirclient 4.3, still what most applications call)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = Patient.where(struct={"name": "张"}).perform_resources(server)
    assert all(isinstance(p, Patient) for p in found)
    assert {p.id for p in found} == {zhang_san, zhang_wei}
    assert {p.name[0].text for p in found} == {"张三", "张伟"}
    assert search_ids(Patient, {"name": {"$exact": "张三"}}, server) == {zhang_san}
    assert search_ids(Patient, {"identifier": f"{HEALTH_RECORD}|{record}"}, server) == {zhang_wei}
    assert search_ids(Patient, {"birthdate": "ge1980-01-01"}, server) == {zhang_san, zhang_wei}
    assert search_ids(Patient, {"birthdate": "lt1980"}, server) == {li_si}
    assert search_ids(Patient, {"name": "张", "gender": "male"}, server) == {zhang_san}
    assert search_ids(Patient, {"name": "王"}, server) == set()

    bundle = Bundle.read_from(Patient.where(struct={"name": "张"}).construct(), server)
    assert bundle.type == "searchset"
    assert bundle.total == 2
    assert {e.search.mode for e in bundle.entry} == {"match"}
    assert all(e.fullUrl.endswith(f"/Patient/{e.resource.id}") for e in bundle.entry)


def test_search_standard_patients(smart):
    smart.prepare()
    server = smart.server
    john = create(Patient, standard_patient("Smith", "John", "1970-01-01", "male"), server)
    jane = create(Patient, standard_patient("Smith", "Jane", "1985-07-20", "female"), server)
    jones = create(Patient, standard_patient("Jones", "Mary", "1962-12-01", "female"), server)

    assert search_ids(Patient, {"family": "Smith"}, server) == {john, jane}
    assert search_ids(Patient, {"family": "smi"}, server) == {john, jane}
    assert search_ids(Patient, {"given": "Mary"}, server) == {jones}
    assert search_ids(Patient, {"name": "john"}, server) == {john}
    assert search_ids(Patient, {"gender": "female", "birthdate": "ge1980"}, server) == {jane}
    assert search_ids(Patient, {"address-city": "Boston"}, server) == {john, jane, jones}


def test_include_and_paging(smart):
    smart.prepare()
    server = smart.server
    patient_id = create(Patient, chinese_patient("张", "三"), server)
    bundle = transaction(
        [heart_rate(patient_id, 60 + i, f"2024-03-02T09:{i:02d}:00+08:00") for i in range(25)]
    )
    response = Bundle(bundle).create(server)  # POST [base] with a transaction
    assert Bundle(response).type == "transaction-response"

    search = Observation.where(struct={"subject": f"Patient/{patient_id}", "_count": "10"})
    search.include("subject")
    pages = list(search.perform_iter(server))
    assert [len(page.entry) for page in pages] == [11, 11, 6]  # 10 + 10 + 5 matches, + Patient
    assert pages[0].total == 25

    observations = [e.resource for page in pages for e in page.entry if e.search.mode == "match"]
    assert len({o.id for o in observations}) == 25
    assert all(isinstance(o, Observation) for o in observations)
    assert {o.code.coding[0].code for o in observations} == {HEART_RATE.split("|")[1]}
    assert {o.valueQuantity.value for o in observations} == set(range(60, 85))
    for page in pages:
        included = [e.resource for e in page.entry if e.search.mode == "include"]
        assert [(type(r), r.id) for r in included] == [(Patient, patient_id)]


# --- update and delete -------------------------------------------------------------------------
def test_update_and_delete(smart, wire):
    smart.prepare()
    server = smart.server
    patient_id = create(Patient, chinese_patient("张", "三"), server)

    patient = Patient.read(patient_id, server)
    patient.telecom[0].value = "13900139000"
    updated = Patient(patient.update(server))
    assert wire.last("PUT").status_code == 200
    assert updated.meta.versionId == "2"
    assert Patient.read(patient_id, server).telecom[0].value == "13900139000"

    patient.delete(server)
    assert wire.last("DELETE").status_code in (200, 204)
    # http.html#read: a deleted resource reads as 410 Gone.
    with pytest.raises(requests.HTTPError) as gone:
        Patient.read(patient_id, server)
    assert gone.value.response.status_code == 410
    assert search_ids(Patient, {"_id": patient_id}, server) == set()
