"""fhirpy 2.x (beda-software/fhir-py) against a live gateway, over real HTTP.

Each test drives the client the way an application does and asserts what FHIR R4 requires of
the server (http.html, search.html): statuses, Location/ETag, versions, Bundle totals, what a
search includes, and the state a read sees afterwards.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

from tests.clients.content import (
    HEALTH_RECORD,
    HEART_RATE,
    MRN,
    bare_patient,
    chinese_patient,
    fields,
    heart_rate,
    standard_patient,
    transaction,
)


def create(client: SyncFHIRClient, resource: dict):
    """POST a resource dict through fhirpy; returns the saved fhirpy resource."""
    saved = client.resource(resource["resourceType"], **fields(resource))
    saved.save()
    return saved


def seed_chinese_patients(client: SyncFHIRClient) -> dict:
    """张三 (1980), 张伟 (1992, female), 李四 (1975): two share the family name 张."""
    return {
        "zhang_san": create(client, chinese_patient("张", "三", "1980-05-12", "male")),
        "zhang_wei": create(client, chinese_patient("张", "伟", "1992-03-04", "female")),
        "li_si": create(client, chinese_patient("李", "四", "1975-11-30", "male")),
    }


def ids(resources) -> set[str]:
    return {r.id for r in resources}


# --- create, read ------------------------------------------------------------------------------
def test_create_and_read_chinese_patient(fhirpy_client, wire):
    record = "11010100200300117"
    patient = create(fhirpy_client, chinese_patient("张", "三", record=record))

    post = wire.last("POST")
    assert post.status_code == 201, post.text
    assert patient.id
    assert patient.meta.versionId == "1"
    # http.html#create: Location is the new resource's version URL; ETag its version.
    assert post.headers["Location"].endswith(f"/Patient/{patient.id}/_history/1")
    assert post.headers["ETag"] == 'W/"1"'
    assert post.headers.get("Last-Modified")

    read = fhirpy_client.reference("Patient", patient.id).to_resource()
    assert wire.last("GET").status_code == 200
    assert read.resourceType == "Patient"
    assert read.id == patient.id
    assert read.meta.versionId == "1"
    assert read.name[0].text == "张三"
    assert read.name[0].family == "张"
    assert read.name[0]["given"] == ["三"]
    assert read.identifier[0].system == HEALTH_RECORD
    assert read.identifier[0].value == record
    assert read.birthDate == "1980-05-12"
    # client.get(type, id) is the same read.
    assert fhirpy_client.get("Patient", patient.id).name[0].text == "张三"


def test_create_and_read_bare_standard_patient(fhirpy_client, wire):
    """The smallest ordinary Patient (family/given, gender, birthDate) is valid FHIR R4."""
    patient = create(fhirpy_client, bare_patient())

    assert wire.last("POST").status_code == 201
    read = fhirpy_client.get("Patient", patient.id)
    assert read.name[0].family == "Smith"
    assert read.name[0]["given"] == ["John"]
    assert read.gender == "male"
    assert read.birthDate == "1970-01-01"


def test_create_and_search_standard_patient(fhirpy_client, wire):
    """A Patient as a US EHR sends it (MRN, official name, phone, address)."""
    patient = create(fhirpy_client, standard_patient("Smith", "John", mrn="MRN-0001"))
    assert wire.last("POST").status_code == 201
    assert patient.meta.versionId == "1"

    found = fhirpy_client.resources("Patient").search(identifier=f"{MRN}|MRN-0001").fetch()
    assert ids(found) == {patient.id}
    found = fhirpy_client.resources("Patient").search(family="smith", given="john").fetch()
    assert ids(found) == {patient.id}


def test_read_unknown_patient_is_not_found(fhirpy_client, wire):
    with pytest.raises(ResourceNotFound):
        fhirpy_client.get("Patient", "no-such-patient")
    # http.html#read: an unknown resource is 404 (a deleted one is 410).
    assert wire.last("GET").status_code == 404


# --- update ------------------------------------------------------------------------------------
def test_update_increments_version(fhirpy_client, wire):
    patient = create(fhirpy_client, chinese_patient("张", "三"))
    patient.telecom = [{"system": "phone", "value": "13900139000", "use": "mobile"}]
    patient.save()

    put = wire.last("PUT")
    assert put.status_code == 200, put.text
    assert put.request.url.endswith(f"/Patient/{patient.id}")
    assert put.headers["ETag"] == 'W/"2"'
    assert patient.meta.versionId == "2"

    read = fhirpy_client.get("Patient", patient.id)
    assert read.meta.versionId == "2"
    assert read.telecom[0].value == "13900139000"
    assert read.name[0].text == "张三"

    # The first version stays readable (vread), and the history holds both, newest first.
    first = fhirpy_client.execute(f"Patient/{patient.id}/_history/1", method="get")
    assert first["meta"]["versionId"] == "1"
    assert first["telecom"][0]["value"] == "13800138000"
    history = fhirpy_client.execute(f"Patient/{patient.id}/_history", method="get")
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


def test_update_standard_patient(fhirpy_client, wire):
    patient = create(fhirpy_client, standard_patient("Smith", "John"))
    patient.name = [{"use": "official", "family": "Smith", "given": ["John", "Q"]}]
    patient.save()
    assert wire.last("PUT").status_code == 200
    assert patient.meta.versionId == "2"
    assert fhirpy_client.get("Patient", patient.id).name[0]["given"] == ["John", "Q"]


# --- search ------------------------------------------------------------------------------------
def test_search_by_name_identifier_and_birthdate(fhirpy_client):
    seeded = seed_chinese_patients(fhirpy_client)
    zhang_san, zhang_wei, li_si = seeded["zhang_san"], seeded["zhang_wei"], seeded["li_si"]
    patients = fhirpy_client.resources("Patient")

    # string search: case- and accent-insensitive "starts with" on any part of the name
    assert ids(patients.search(name="张").fetch()) == {zhang_san.id, zhang_wei.id}
    assert ids(patients.search(name="张三").fetch()) == {zhang_san.id}
    assert ids(patients.search(family="李").fetch()) == {li_si.id}
    assert ids(patients.search(name__exact="张三").fetch()) == {zhang_san.id}
    assert ids(patients.search(family__exact="张").fetch()) == {zhang_san.id, zhang_wei.id}
    assert patients.search(family__exact="张三").fetch() == []
    assert ids(patients.search(name__contains="四").fetch()) == {li_si.id}

    record = zhang_wei.identifier[0].value
    assert ids(patients.search(identifier=f"{HEALTH_RECORD}|{record}").fetch()) == {zhang_wei.id}
    assert ids(patients.search(identifier=record).fetch()) == {zhang_wei.id}

    assert ids(patients.search(birthdate__ge="1980-01-01").fetch()) == {zhang_san.id, zhang_wei.id}
    assert ids(patients.search(birthdate__lt="1980-05-12").fetch()) == {li_si.id}
    assert ids(patients.search(birthdate="1980").fetch()) == {zhang_san.id}
    # AND across parameters, OR within one (comma)
    assert ids(patients.search(name="张", birthdate__lt="1990").fetch()) == {zhang_san.id}
    assert ids(patients.search(gender="female", name="张").fetch()) == {zhang_wei.id}
    assert ids(patients.search(name="三,四").fetch()) == {zhang_san.id, li_si.id}

    bundle = patients.search(name="张").fetch_raw()
    assert bundle.resourceType == "Bundle"
    assert bundle.type == "searchset"
    assert bundle.total == 2
    assert {e.search.mode for e in bundle.entry} == {"match"}


def test_first_get_and_sort(fhirpy_client):
    seeded = seed_chinese_patients(fhirpy_client)
    patients = fhirpy_client.resources("Patient")

    assert patients.sort("birthdate").first().id == seeded["li_si"].id
    assert patients.sort("-birthdate").first().id == seeded["zhang_wei"].id
    assert patients.search(name="王").first() is None

    record = seeded["zhang_san"].identifier[0].value
    assert (
        patients.search(identifier=f"{HEALTH_RECORD}|{record}").get().id == seeded["zhang_san"].id
    )
    with pytest.raises(MultipleResourcesFound):
        patients.search(name="张").get()
    with pytest.raises(ResourceNotFound):
        patients.search(identifier=f"{HEALTH_RECORD}|00000000000000000").get()

    ordered = patients.sort("birthdate").fetch()
    assert [p.birthDate for p in ordered] == ["1975-11-30", "1980-05-12", "1992-03-04"]


def test_count(fhirpy_client, wire):
    """fhirpy's count() asks for `_count=0&_totalMethod=count` and reads Bundle.total.

    `_totalMethod` is not an R4 parameter (search.html: servers SHOULD ignore parameters they
    do not understand, unless the client asked for strict handling)."""
    seed_chinese_patients(fhirpy_client)

    assert fhirpy_client.resources("Patient").search(name="张").count() == 2
    assert wire.last("GET").status_code == 200
    assert fhirpy_client.resources("Patient").count() == 3
    assert fhirpy_client.resources("Patient").search(name="王").count() == 0


def test_summary_count(fhirpy_client, wire):
    """The R4 way to ask for the number of matches alone: _summary=count (search.html)."""
    seed_chinese_patients(fhirpy_client)
    bundle = fhirpy_client.resources("Patient").search(name="张", _summary="count").fetch_raw()
    assert wire.last("GET").status_code == 200
    assert bundle.type == "searchset"
    assert bundle.total == 2
    assert not bundle.get("entry")


def test_include_subject_patient(fhirpy_client):
    zhang = create(fhirpy_client, chinese_patient("张", "三"))
    li = create(fhirpy_client, chinese_patient("李", "四", "1975-11-30"))
    for value in (70, 72, 75):
        create(fhirpy_client, heart_rate(zhang.id, value))
    create(fhirpy_client, heart_rate(li.id, 88))

    search = (
        fhirpy_client.resources("Observation")
        .search(subject=zhang, code=HEART_RATE)
        .include("Observation", "subject")
    )
    bundle = search.fetch_raw()

    matches = [e for e in bundle.entry if e.search.mode == "match"]
    included = [e for e in bundle.entry if e.search.mode == "include"]
    assert len(matches) == 3
    assert {e.resource.resourceType for e in matches} == {"Observation"}
    assert sorted(e.resource.valueQuantity.value for e in matches) == [70, 72, 75]
    # The subject is included once, however many matches refer to it; Bundle.total counts
    # matches only (search.html#total).
    assert [(e.resource.resourceType, e.resource.id) for e in included] == [("Patient", zhang.id)]
    assert included[0].resource.name[0].text == "张三"
    assert bundle.total == 3
    # fetch() hands back the Observations only.
    assert len(search.fetch()) == 3

    # _revinclude: the Patient with the Observations that refer to it.
    bundle = (
        fhirpy_client.resources("Patient")
        .search(_id=li.id)
        .revinclude("Observation", "subject")
        .fetch_raw()
    )
    by_mode = {e.search.mode: e.resource for e in bundle.entry}
    assert len(bundle.entry) == 2
    assert (by_mode["match"].resourceType, by_mode["match"].id) == ("Patient", li.id)
    assert by_mode["include"].resourceType == "Observation"
    assert by_mode["include"].valueQuantity.value == 88
    assert bundle.total == 1


def _load_heart_rates(client: SyncFHIRClient, wire, patient_id: str, n: int) -> set[str]:
    bundle = transaction(
        [heart_rate(patient_id, 60 + i, f"2024-03-01T08:{i:02d}:00+08:00") for i in range(n)]
    )
    response = client.execute("", method="post", data=bundle)
    assert wire.last("POST").status_code == 200
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201"] * n
    return {e["response"]["location"].split("/")[1] for e in response["entry"]}


def test_fetch_all_follows_next_links(fhirpy_client, wire):
    patient = create(fhirpy_client, chinese_patient("张", "三"))
    created = _load_heart_rates(fhirpy_client, wire, patient.id, 45)
    wire.log.clear()

    search = fhirpy_client.resources("Observation").search(subject=patient).limit(10)
    everything = search.fetch_all()

    assert len(everything) == 45
    assert ids(everything) == created
    pages = wire.requests_of("GET")
    assert len(pages) == 5, [p.request.url for p in pages]
    bundles = [p.json() for p in pages]
    assert [len(b.get("entry", [])) for b in bundles] == [10, 10, 10, 10, 5]
    assert bundles[0]["total"] == 45
    assert not any(link["relation"] == "next" for link in bundles[-1]["link"])
    # The first page alone (fetch) is 10 of them.
    assert len(search.fetch()) == 10


def test_fetch_all_sorted_chained_pages(fhirpy_client, wire):
    """Pages of a chained search on a Chinese name, newest first: the next links carry the
    encoded characters and the sort across pages."""
    zhang = create(fhirpy_client, chinese_patient("张", "三"))
    li = create(fhirpy_client, chinese_patient("李", "四", "1975-11-30"))
    _load_heart_rates(fhirpy_client, wire, zhang.id, 45)
    _load_heart_rates(fhirpy_client, wire, li.id, 3)
    wire.log.clear()

    newest_first = (
        fhirpy_client.resources("Observation")
        .search(subject__Patient__name="张三", code=HEART_RATE)
        .sort("-date")
        .limit(10)
        .fetch_all()
    )
    assert "subject:Patient.name=" in unquote(wire.log[0].request.url)
    assert len(wire.requests_of("GET")) == 5
    assert {o.subject.id for o in newest_first} == {zhang.id}
    assert [o.valueQuantity.value for o in newest_first] == list(range(104, 59, -1))


# --- conditional interactions --------------------------------------------------------------
def test_get_or_create(fhirpy_client, wire):
    """searchset.get_or_create(resource): no match creates (201, created=True); one match
    returns the existing resource (200, created=False) and creates nothing."""
    record = "11010100200300118"
    patients = fhirpy_client.resources("Patient").search(identifier=f"{HEALTH_RECORD}|{record}")
    resource = fhirpy_client.resource(
        "Patient", **fields(chinese_patient("张", "三", record=record))
    )

    first, created = patients.get_or_create(resource)
    assert created is True
    assert wire.last("POST").status_code == 201

    second, created = patients.get_or_create(resource)
    assert wire.last("POST").status_code == 200
    assert created is False
    assert second.id == first.id
    assert second.meta.versionId == "1"
    assert ids(patients.fetch()) == {first.id}


def test_conditional_create_with_if_none_exist(gateway, wire):
    """The R4 form of conditional create: If-None-Exist (http.html#ccreate)."""
    record = "11010100200300119"
    client = SyncFHIRClient(
        gateway.base,
        extra_headers={"If-None-Exist": f"identifier={HEALTH_RECORD}|{record}"},
        requests_config={"timeout": 30, "hooks": {"response": [wire.record]}},
    )
    first = create(client, chinese_patient("张", "三", record=record))
    assert wire.last("POST").status_code == 201
    second = create(client, chinese_patient("张", "三", record=record))
    assert wire.last("POST").status_code == 200
    assert second.id == first.id
    assert second.meta.versionId == "1"
    assert len(client.resources("Patient").fetch()) == 1


def test_conditional_update(fhirpy_client, wire):
    """searchset.update(resource): PUT /Patient?identifier=… (http.html#cond-update)."""
    record = "11010100200300120"
    patients = fhirpy_client.resources("Patient").search(identifier=f"{HEALTH_RECORD}|{record}")
    resource = fhirpy_client.resource(
        "Patient", **fields(chinese_patient("张", "三", record=record))
    )

    created_patient, created = patients.update(resource)
    assert wire.last("PUT").status_code == 201
    assert created is True
    assert created_patient.meta.versionId == "1"

    resource.active = False
    updated, created = patients.update(resource)
    assert wire.last("PUT").status_code == 200
    assert created is False
    assert updated.id == created_patient.id
    assert updated.meta.versionId == "2"
    assert fhirpy_client.get("Patient", updated.id).active is False

    create(fhirpy_client, chinese_patient("张", "三", record=record))  # now two match
    with pytest.raises(MultipleResourcesFound):
        patients.update(resource)
    assert wire.last("PUT").status_code == 412


def test_conditional_delete(fhirpy_client, wire):
    record = "11010100200300121"
    patients = fhirpy_client.resources("Patient").search(identifier=f"{HEALTH_RECORD}|{record}")
    patient = create(fhirpy_client, chinese_patient("张", "三", record=record))
    other = create(fhirpy_client, chinese_patient("李", "四"))

    _, status = patients.delete()
    assert status in (200, 204)  # http.html#delete: either
    assert patients.fetch() == []
    with pytest.raises(ResourceNotFound):
        fhirpy_client.get("Patient", patient.id)
    assert fhirpy_client.get("Patient", other.id).id == other.id


# --- refresh, $validate -------------------------------------------------------------------
def test_refresh_sees_another_clients_update(fhirpy_client, wire):
    mine = create(fhirpy_client, chinese_patient("张", "三"))
    theirs = fhirpy_client.reference("Patient", mine.id).to_resource()
    theirs.active = False
    theirs.save()
    assert theirs.meta.versionId == "2"

    mine.refresh()
    assert mine.meta.versionId == "2"
    assert mine.active is False
    # Nothing changed since: a 304 (fhirpy sends If-None-Match) or the same version again.
    mine.refresh()
    assert wire.last("GET").status_code in (200, 304)
    assert mine.meta.versionId == "2"


def test_validate_operation(fhirpy_client, wire):
    """resource.is_valid(): POST [type]/$validate with the resource as the body."""
    patient = fhirpy_client.resource("Patient", **fields(chinese_patient("张", "三")))
    assert patient.is_valid() is True
    assert wire.last("POST").request.url.split("?")[0].endswith("/Patient/$validate")
    observation = fhirpy_client.resource("Observation", **fields(heart_rate("example")))
    assert observation.is_valid() is True


def test_validate_bare_standard_patient(fhirpy_client):
    """A Patient that claims no profile is validated against the R4 definition of Patient,
    which it satisfies."""
    assert fhirpy_client.resource("Patient", **fields(bare_patient())).is_valid() is True


# --- delete --------------------------------------------------------------------------------
def test_delete_then_read_is_gone(fhirpy_client, wire):
    patient = create(fhirpy_client, chinese_patient("张", "三"))
    keep = create(fhirpy_client, chinese_patient("张", "伟", "1992-03-04", "female"))

    patient.delete()
    assert wire.last("DELETE").status_code in (200, 204)

    # http.html#read: a read of a deleted resource is 410 Gone (fhirpy: ResourceNotFound).
    with pytest.raises(ResourceNotFound):
        fhirpy_client.get("Patient", patient.id)
    assert wire.last("GET").status_code == 410
    with pytest.raises(ResourceNotFound):
        fhirpy_client.reference("Patient", patient.id).to_resource()

    assert ids(fhirpy_client.resources("Patient").search(name="张").fetch()) == {keep.id}
    history = fhirpy_client.execute(f"Patient/{patient.id}/_history", method="get")
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    # The version before the delete stays readable.
    assert fhirpy_client.execute(f"Patient/{patient.id}/_history/1", method="get")["id"] == (
        patient.id
    )

    # Deleting again is not an error (http.html#delete).
    patient.delete()
    assert wire.last("DELETE").status_code in (200, 204)


# --- async client --------------------------------------------------------------------------
async def test_async_client_round_trip(gateway):
    client = AsyncFHIRClient(gateway.base)
    wang = chinese_patient("王", "秀英", "1958-02-14", "female")
    patient = client.resource("Patient", **fields(wang))
    await patient.save()
    assert patient.id
    assert patient.meta.versionId == "1"

    found = await client.resources("Patient").search(name="王秀英").fetch_all()
    assert [p.id for p in found] == [patient.id]
    assert found[0].name[0].text == "王秀英"

    patient.birthDate = "1958-02-15"
    await patient.save()
    assert patient.meta.versionId == "2"
    read = await client.reference("Patient", patient.id).to_resource()
    assert read.birthDate == "1958-02-15"

    await patient.delete()
    with pytest.raises(ResourceNotFound):
        await client.get("Patient", patient.id)
    assert await client.resources("Patient").search(name="王").fetch() == []
