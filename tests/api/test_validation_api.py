"""Profiles enforced over the REST API: write-time validation, $validate, terminology
operations and our conformance resources served by the store."""

from __future__ import annotations

import copy
import json

import pytest

from gateway.settings import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "profiles" / "examples"
CN = "https://fhir.jtys.cn"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text("utf-8"))


@pytest.fixture
def wang():
    res = example("Patient-cn-wang-xiuying.json")
    res.pop("id")
    return res


async def test_valid_cn_patient_is_stored(client, wang):
    r = await client.post("/Patient", json=wang)
    assert r.status_code == 201, r.text
    assert r.json()["name"][0]["text"] == "王秀英"


async def test_wrong_id_card_check_digit_is_422_with_location(client, wang):
    bad = copy.deepcopy(wang)
    bad["identifier"][0]["value"] = "410102195603120422"  # last character should be 1
    r = await client.post("/Patient", json=bad)
    assert r.status_code == 422
    issues = r.json()["issue"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors and all(i["expression"] for i in errors)
    assert any("Patient.identifier" in e for i in errors for e in i["expression"])
    # Bilingual text, a stable code.
    assert any("身份证" in i["details"]["text"] for i in errors)
    assert all(i["details"]["coding"][0]["code"].startswith("VAL-") for i in errors)
    assert (await client.get("/Patient", params={"_summary": "count"})).json()["total"] == 0


async def test_missing_name_text_is_rejected_by_default(client, wang):
    bad = copy.deepcopy(wang)
    del bad["name"][0]["text"]
    r = await client.post("/Patient", json=bad)
    assert r.status_code == 422
    exprs = [e for i in r.json()["issue"] for e in i.get("expression", [])]
    assert any(e.startswith("Patient.name") for e in exprs), exprs


async def test_unknown_claimed_profile_is_not_a_rejection(client, wang):
    res = copy.deepcopy(wang)
    res["meta"] = {
        "profile": [
            f"{CN}/StructureDefinition/cn-patient",
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
        ]
    }
    assert (await client.post("/Patient", json=res)).status_code == 201


async def test_transaction_entry_errors_are_located_in_the_bundle(client, wang):
    bad = copy.deepcopy(wang)
    bad["identifier"][0]["value"] = "410102195603120422"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": wang, "request": {"method": "POST", "url": "Patient"}},
            {"resource": bad, "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 422
    exprs = [e for i in r.json()["issue"] for e in i.get("expression", [])]
    assert any(e.startswith("Bundle.entry[1].resource.identifier") for e in exprs), exprs
    assert (await client.get("/Patient", params={"_summary": "count"})).json()["total"] == 0


async def test_validate_operation_reports_without_storing(client, wang):
    bad = copy.deepcopy(wang)
    bad["identifier"][0]["value"] = "410102195603120422"
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bad}]}
    r = await client.post("/Patient/$validate", json=params)
    assert r.status_code == 200
    assert any(i["severity"] == "error" for i in r.json()["issue"])
    ok = await client.post("/Patient/$validate", json=wang)
    assert ok.status_code == 200
    assert not [i for i in ok.json()["issue"] if i["severity"] in ("error", "fatal")]
    assert (await client.get("/Patient", params={"_summary": "count"})).json()["total"] == 0


async def test_validate_stored_instance(client, wang):
    pid = (await client.post("/Patient", json=wang)).json()["id"]
    r = await client.get(f"/Patient/{pid}/$validate")
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"
    assert (await client.get("/Patient/nope/$validate")).status_code == 404


async def test_conformance_resources_are_served(client, app):
    # The client fixture emptied the database: install again, as a restart would.
    from gateway.fhir.conformance import install_conformance

    registry = app.state.core.write_check.validator.registry
    assert await install_conformance(app.state.core.store, list(registry.local_resources())) > 0
    assert await install_conformance(app.state.core.store, list(registry.local_resources())) == 0
    url = f"{CN}/StructureDefinition/cn-patient"
    r = await client.get("/StructureDefinition", params={"url": url, "_total": "accurate"})
    assert r.json()["total"] == 1
    sd = r.json()["entry"][0]["resource"]
    assert sd["url"] == url and sd["snapshot"]["element"]


async def test_expand_lookup_validate_code(client):
    vs = f"{CN}/ValueSet/gb-t-2261-1"
    r = await client.get("/ValueSet/$expand", params={"url": vs})
    assert r.status_code == 200, r.text
    codes = {c["code"] for c in r.json()["expansion"]["contains"]}
    assert {"1", "2"} <= codes
    cs = "urn:oid:2.16.156.10011.2.3.3.4"  # GB/T 2261.1, by its WS/T 500 OID
    r = await client.get("/CodeSystem/$lookup", params={"system": cs, "code": "2"})
    assert r.status_code == 200
    display = [p for p in r.json()["parameter"] if p["name"] == "display"][0]["valueString"]
    assert "女" in display
    r = await client.get("/ValueSet/$validate-code", params={"url": vs, "system": cs, "code": "2"})
    assert [p for p in r.json()["parameter"] if p["name"] == "result"][0]["valueBoolean"] is True
    r = await client.get("/ValueSet/$validate-code", params={"url": vs, "system": cs, "code": "x"})
    assert [p for p in r.json()["parameter"] if p["name"] == "result"][0]["valueBoolean"] is False
    missing = await client.get("/ValueSet/$expand", params={"url": f"{CN}/ValueSet/nope"})
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


async def test_capability_statement_lists_operations(client):
    cap = (await client.get("/metadata")).json()
    patient = next(r for r in cap["rest"][0]["resource"] if r["type"] == "Patient")
    assert "validate" in {o["name"] for o in patient["operation"]}
    vs = next(r for r in cap["rest"][0]["resource"] if r["type"] == "ValueSet")
    assert {"expand", "validate-code", "validate"} <= {o["name"] for o in vs["operation"]}


BOGUS_WRITES = [
    # (resource, where the error is)
    (
        {"resourceType": "Observation", "status": "bogus", "code": {"text": "体温"}},
        "Observation.status",  # required binding
    ),
    (
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "体温"},
            "effectivePeriod": {"start": "2024-05-02", "end": "2024-05-01"},
        },
        "Observation.effective",  # per-1: start <= end
    ),
    (
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "体温"},
            "subject": {"reference": "Observation/1"},
        },
        "Observation.subject",  # not an allowed target type
    ),
]


@pytest.mark.parametrize(("resource", "where"), BOGUS_WRITES)
async def test_core_rules_apply_to_writes_no_profile_covers(client, resource, where):
    # R4 validation.html: content must satisfy the core definitions' bindings and invariants,
    # whether or not a profile applies.
    r = await client.post("/Observation", json=resource)
    assert r.status_code == 422, r.text
    errors = [i for i in r.json()["issue"] if i["severity"] == "error"]
    assert any(e["expression"][0].startswith(where) for e in errors), errors
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": resource, "request": {"method": "POST", "url": "Observation"}}],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 422, r.text
    assert (await client.get("/Observation")).json()["total"] == 0


async def test_core_validation_can_be_turned_off(database_url):
    from tests.conftest import client_for, running_app

    async with running_app(database_url, core_validation=False) as app, client_for(app) as c:
        r = await c.post("/Observation", json=BOGUS_WRITES[0][0])
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/Patient/$validate", {"resourceType": "Patient", "meta": {"profile": 5}}),
        ("/Patient/$validate", {"resourceType": "Patient", "meta": {"profile": "ab"}}),
        (
            "/Patient/$validate",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "resource", "resource": {"resourceType": "Patient"}},
                    {"name": "profile", "valueUri": 5},
                ],
            },
        ),
        ("/Patient/v1/$validate", {"resourceType": "Parameters", "parameter": 5}),
    ],
)
async def test_validate_with_odd_parameters_answers_an_outcome(client, url, body):
    await client.put("/Patient/v1", json={**example("Patient-cn-wang-xiuying.json"), "id": "v1"})
    r = await client.post(url, json=body)
    assert r.status_code in (200, 400), r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if body.get("meta", {}).get("profile") == "ab":  # a string, not a list of characters
        assert not any("'a'" in (i.get("diagnostics") or "") for i in outcome["issue"])


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"id": "a b"}, "Patient.id"),
        ({"name": [{"text": "王\u0000秀英"}]}, "Patient.name[0].text"),
    ],
)
async def test_validate_reports_what_a_write_refuses(client, wang, change, where):
    bad = {**wang, **change}
    assert (await client.post("/Patient", json=bad)).status_code == 400
    r = await client.post("/Patient/$validate", json=bad)
    assert r.status_code == 200
    errors = [i for i in r.json()["issue"] if i["severity"] == "error"]
    assert any(where in i.get("expression", []) for i in errors), errors


def _errors(outcome: dict) -> list[dict]:
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


async def test_system_level_validate(client, wang):
    """POST /$validate: the resource (bare or in a Parameters) names its own type."""
    r = await client.post("/$validate", json=wang)
    assert r.status_code == 200 and not _errors(r.json())
    bad = {"resourceType": "Observation", "status": "final"}  # code is 1..1
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bad}]}
    r = await client.post("/$validate", json=params)
    assert r.status_code == 200
    assert [e for i in _errors(r.json()) for e in i["expression"]] == ["Observation.code"]
    metadata = (await client.get("/metadata")).json()
    assert "validate" in {o["name"] for o in metadata["rest"][0]["operation"]}


async def test_a_parameters_resource_is_validated_as_a_resource(client):
    """A Parameters without a `resource` parameter is the resource to validate, not an
    operation input that lacks one."""
    good = {"resourceType": "Parameters", "parameter": [{"name": "a", "valueString": "x"}]}
    r = await client.post("/Parameters/$validate", json=good)
    assert r.status_code == 200 and not _errors(r.json()), r.text
    bad = {"resourceType": "Parameters", "parameter": [{"name": "a", "valueColour": "red"}]}
    r = await client.post("/Parameters/$validate", json=bad)
    assert "Parameters.parameter[0].valueColour" in [
        e for i in _errors(r.json()) for e in i["expression"]
    ]


@pytest.mark.parametrize(
    ("resource", "where"),
    [
        # Choice values located as the HL7 validator writes them.
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "t"},
                "valueQuantity": {"value": "1"},
            },
            "Observation.value.ofType(Quantity).value",
        ),
        # At most 9 fractional-second digits.
        (
            {"resourceType": "Patient", "meta": {"lastUpdated": "2024-01-01T00:00:00.1234567891Z"}},
            "Patient.meta.lastUpdated",
        ),
        # A bare null in a primitive array (no matching `_given` entry).
        ({"resourceType": "Patient", "name": [{"given": ["a", None]}]}, "Patient.name[0].given[1]"),
        # ids are 1 to 64 of [A-Za-z0-9-.]
        ({"resourceType": "Patient", "id": "x" * 65}, "Patient.id"),
    ],
)
async def test_validate_locates_r4_errors(client, resource, where):
    r = await client.post(f"/{resource['resourceType']}/$validate", json=resource)
    assert r.status_code == 200
    assert where in [e for i in _errors(r.json()) for e in i.get("expression", [])], r.text


async def test_null_holes_matched_by_their_extension_are_valid(client):
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "B"}]}
    ok = {"resourceType": "Patient", "name": [{"given": ["a", None], "_given": [None, ext]}]}
    r = await client.post("/Patient/$validate", json=ok)
    assert not _errors(r.json()), r.text
    assert (await client.post("/Patient", json=ok)).status_code == 201
