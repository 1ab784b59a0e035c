"""CapabilityStatement (R4 http.html §capabilities, capabilitystatement.html).

"Servers SHALL provide a Capability Statement that specifies which interactions and resources are
supported." What it lists must actually work: every listed type answers a search, and every
searchParam listed for a type is accepted (search.html: a server rejects, 400, parameters it does
not support unless handling=lenient — so a listed one must never be rejected). Likewise each
searchParam is listed once, conditionalRead says what read does with If-None-Match and
If-Modified-Since, every searchInclude/searchRevInclude value is accepted (and names the
reference parameters), operations point at their R4 OperationDefinitions, and rest.searchParam
lists what a system-level search serves.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conformance._helpers import observation, patient
from tests.conftest import need_corpus

TYPE_INTERACTIONS = {
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
}

VALUES = {
    "token": "http://example.org|x",
    "string": "x",
    "date": "2024-01-01",
    "reference": "Patient/x",
    "number": "1",
    "quantity": "1",
    "uri": "http://example.org/x",
}


@pytest.fixture
async def capability(client):
    r = await client.get("/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    return r.json()


def resource_entry(cs: dict, rtype: str) -> dict:
    [entry] = [r for r in cs["rest"][0]["resource"] if r["type"] == rtype]
    return entry


async def test_capability_statement_basics(capability):
    cs = capability
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] in ("instance", "capability")
    assert cs["status"] in ("draft", "active", "retired", "unknown")
    assert cs["date"]
    assert any(f in ("json", "application/fhir+json") for f in cs["format"])
    server = [r for r in cs["rest"] if r["mode"] == "server"]
    assert len(server) == 1
    system = {i["code"] for i in server[0]["interaction"]}
    assert {"transaction", "batch", "history-system"} <= system


async def test_patient_lists_every_instance_and_type_interaction(capability):
    patient = resource_entry(capability, "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert TYPE_INTERACTIONS <= codes


async def test_every_listed_type_answers_a_search(client, capability):
    types = [r["type"] for r in capability["rest"][0]["resource"]]
    assert "Patient" in types and "Observation" in types
    bad = []
    for rtype in types:
        r = await client.get(f"/{rtype}", params={"_count": "1"})
        if r.status_code != 200 or r.json().get("type") != "searchset":
            bad.append((rtype, r.status_code))
    assert not bad, bad


@pytest.mark.parametrize(
    "rtype",
    [
        "Patient",
        "Observation",
        "Encounter",
        "Practitioner",
        "Organization",
        "Condition",
        "CarePlan",
    ],
)
async def test_every_listed_search_param_is_accepted(client, capability, rtype):
    params = resource_entry(capability, rtype).get("searchParam", [])
    assert params
    if rtype == "Patient":
        names = {p["name"] for p in params}
        assert {
            "_id",
            "_lastUpdated",
            "identifier",
            "name",
            "family",
            "given",
            "birthdate",
            "gender",
            "address-city",
        } <= names
    rejected = []
    for p in params:
        value = VALUES.get(p["type"])
        if value is None:  # composite / special: no generic valid value
            continue
        r = await client.get(f"/{rtype}", params={p["name"]: value})
        if r.status_code != 200:
            rejected.append((p["name"], p["type"], r.status_code, r.text[:200]))
    assert not rejected, rejected


# --- each searchParam once (capabilitystatement.html: rest.resource.searchParam) -------------
def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


async def test_each_search_param_is_listed_once_per_resource(capability):
    rest = capability["rest"][0]
    dup = {}
    for entry in rest["resource"]:
        names = [p["name"] for p in entry.get("searchParam", [])]
        assert {"_id", "_lastUpdated"} <= set(names), entry["type"]
        if _duplicates(names):
            dup[entry["type"]] = _duplicates(names)
    assert not dup, dup
    assert not _duplicates([p["name"] for p in rest.get("searchParam", [])])


# --- conditionalRead (http.html §cread: If-None-Match, If-Modified-Since → 304) --------------
async def test_conditional_read_is_declared_as_served(client, capability):
    r = await client.post("/Patient", json=patient("cap-cread"))
    assert r.status_code == 201, r.text
    pid, etag = r.json()["id"], r.headers["etag"]
    last_modified = r.headers.get("last-modified") or "Sat, 01 Jan 2100 00:00:00 GMT"
    served = set()
    for path in (f"/Patient/{pid}", f"/Patient/{pid}/_history/1"):
        if (await client.get(path, headers={"If-None-Match": etag})).status_code == 304:
            served.add("not-match")
        if (
            await client.get(path, headers={"If-Modified-Since": last_modified})
        ).status_code == 304:
            served.add("modified-since")
        # and a changed/older condition still answers with the resource
        assert (await client.get(path, headers={"If-None-Match": 'W/"99"'})).status_code == 200
        old = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert (await client.get(path, headers={"If-Modified-Since": old})).status_code == 200
    expected = {
        frozenset(): "not-supported",
        frozenset({"modified-since"}): "modified-since",
        frozenset({"not-match"}): "not-match",
        frozenset({"not-match", "modified-since"}): "full-support",
    }[frozenset(served)]
    assert expected == "full-support"
    declared = {e["type"]: e.get("conditionalRead") for e in capability["rest"][0]["resource"]}
    assert set(declared.values()) == {expected}, {
        t: v for t, v in declared.items() if v != expected
    }


# --- searchInclude / searchRevInclude (search.html §_include) --------------------------------
def _reference_params(cs: dict) -> dict[str, set[str]]:
    return {
        e["type"]: {p["name"] for p in e.get("searchParam", []) if p["type"] == "reference"}
        for e in cs["rest"][0]["resource"]
    }


async def test_search_includes_name_the_reference_params(capability):
    refs = _reference_params(capability)
    wrong = []
    for entry in capability["rest"][0]["resource"]:
        rtype = entry["type"]
        includes = entry.get("searchInclude", [])
        assert "*" in includes and "*" in entry.get("searchRevInclude", []), rtype
        assert not _duplicates(includes) and not _duplicates(entry["searchRevInclude"]), rtype
        # exactly Type:code for each of the type's reference parameters
        expected = {"*"} | {f"{rtype}:{code}" for code in refs[rtype]}
        if set(includes) != expected:
            wrong.append(("include", rtype, sorted(set(includes) ^ expected)))
        for value in entry["searchRevInclude"]:
            if value == "*":
                continue
            src, _, code = value.partition(":")
            if code not in refs.get(src, ()):
                wrong.append(("revinclude", rtype, value))
    assert not wrong, wrong[:20]
    patient = resource_entry(capability, "Patient")
    assert {"Patient:general-practitioner", "Patient:organization", "Patient:link"} <= set(
        patient["searchInclude"]
    )
    rev = set(patient["searchRevInclude"])
    assert {"Observation:subject", "Observation:patient", "Encounter:subject"} <= rev
    assert {"Provenance:target", "Patient:link"} <= rev  # any-type target; itself
    assert "Observation:encounter" not in rev  # targets Encounter only
    assert "Observation:subject" in resource_entry(capability, "Group")["searchRevInclude"]


async def test_every_listed_include_is_accepted(client, capability):
    rejected = []
    for entry in capability["rest"][0]["resource"]:
        rtype = entry["type"]
        for name, values in (
            ("_include", entry["searchInclude"]),
            ("_revinclude", entry["searchRevInclude"]),
        ):
            for param in (name, f"{name}:iterate"):
                body = [("_count", "1"), *((param, v) for v in values)]
                r = await client.post(
                    f"/{rtype}/_search",
                    content=urlencode(body),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                if r.status_code != 200:
                    rejected.append((rtype, param, r.status_code, r.text[:300]))
    assert not rejected, rejected[:10]


async def test_listed_includes_return_what_they_name(client, capability):
    r = await client.post("/Patient", json=patient("cap-include"))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await client.post("/Observation", json=observation(f"Patient/{pid}"))
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    obs = resource_entry(capability, "Observation")
    pat = resource_entry(capability, "Patient")
    assert "Observation:subject" in obs["searchInclude"]
    assert "Observation:subject" in pat["searchRevInclude"]

    async def included(path: str, params: list[tuple[str, str]]) -> set[str]:
        r = await client.get(path, params=params)
        assert r.status_code == 200, r.text
        return {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in r.json().get("entry", [])
            if e["search"]["mode"] == "include"
        }

    assert await included("/Observation", [("_id", oid), ("_include", "Observation:subject")]) == {
        f"Patient/{pid}"
    }
    assert await included("/Observation", [("_id", oid), ("_include", "*")]) == {f"Patient/{pid}"}
    assert await included("/Patient", [("_id", pid), ("_revinclude", "Observation:subject")]) == {
        f"Observation/{oid}"
    }
    assert await included(
        "/Patient",
        [
            ("_id", pid),
            ("_revinclude", "Observation:subject"),
            ("_include:iterate", "Observation:subject"),
        ],
    ) == {f"Observation/{oid}"}  # the Patient is a match, never also an include


# --- operation definitions (operationslist.html: R4 canonicals <Type>-<code>) ----------------
@pytest.fixture(scope="module")
def r4_operation_definitions() -> dict[str, dict]:
    path = need_corpus("fhir-r4-definitions", "profiles-resources.json")
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return {
        e["resource"]["url"]: e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "OperationDefinition"
    }


async def test_operation_definitions_are_the_r4_ones(
    client, app, capability, r4_operation_definitions
):
    """Each listed operation names a definition that covers it: R4's own, or one the gateway
    serves itself (based on R4's) where R4's does not cover the level."""
    await install_conformance_resources(app)
    codesystem = resource_entry(capability, "CodeSystem")
    by_name = {o["name"]: o["definition"] for o in codesystem["operation"]}
    assert (
        by_name["validate-code"]
        == "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"
    )
    wrong = []
    listed = 0
    rest = capability["rest"][0]
    for entry in [*rest["resource"], {"type": None, "operation": rest.get("operation", [])}]:
        for op in entry.get("operation", []):
            listed += 1
            od = r4_operation_definitions.get(op["definition"]) or await served_definition(
                client, op["definition"], r4_operation_definitions
            )
            level_ok = od is not None and (
                od["system"] if entry["type"] is None else od["type"] or od["instance"]
            )
            if (
                od is None
                or od["code"] != op["name"]
                or not level_ok
                or (entry["type"] and not {entry["type"], "Resource"} & set(od["resource"]))
            ):
                wrong.append((entry["type"], op["name"], op["definition"]))
    assert listed
    assert not wrong, wrong[:20]


async def install_conformance_resources(app) -> None:
    """The client fixture empties the database: install our conformance resources again,
    as a start-up does."""
    from gateway.fhir.conformance import install_conformance

    registry = app.state.core.write_check.validator.registry
    await install_conformance(app.state.core.store, list(registry.local_resources()))


async def served_definition(client, url: str, r4: dict) -> dict | None:
    """An OperationDefinition the gateway serves, when it is based on an R4 one for the same
    operation, or is one of our own operations ($ingest, $native, $episode: no R4 base)."""
    found = (await client.get("/OperationDefinition", params={"url": url})).json()
    resources = [e["resource"] for e in found.get("entry", [])]
    if len(resources) != 1:
        return None
    od = resources[0]
    if "base" not in od and url.startswith("https://fhir.jtys.cn/OperationDefinition/"):
        return od
    base = r4.get(od.get("base"))
    return od if base is not None and base["code"] == od["code"] else None


# --- system-level search parameters (rest.searchParam; search.html §3.1.1.3 _type) -----------
SYSTEM_VALUES = {
    "_lastUpdated": "ge2000-01-01",
    "_tag": "http://example.org/fhir/tags|cap-system",
    "_security": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N",
    "_profile": "http://hl7.org/fhir/StructureDefinition/Patient",
    "_source": "http://example.org/fhir/source#cap-system",
}


async def test_system_search_params_are_listed_and_served(client, capability):
    params = capability["rest"][0].get("searchParam", [])
    names = [p["name"] for p in params]
    assert {"_type", "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} <= set(
        names
    )
    tag, security = SYSTEM_VALUES["_tag"].split("|"), SYSTEM_VALUES["_security"].split("|")
    meta = {
        "tag": [{"system": tag[0], "code": tag[1]}],
        "security": [{"system": security[0], "code": security[1]}],
        "profile": [SYSTEM_VALUES["_profile"]],
        "source": SYSTEM_VALUES["_source"],
    }
    r = await client.post("/Patient", json=patient("cap-system", meta=meta))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await client.post("/Observation", json=observation(f"Patient/{pid}"))
    assert r.status_code == 201, r.text
    values = {**SYSTEM_VALUES, "_id": pid}
    failed = []
    for name in names:
        if name == "_type":
            continue
        assert name in values, f"no test value for the listed system parameter {name}"
        for types in (None, "Patient", "Patient,Observation"):
            query = [(name, values[name])] + ([("_type", types)] if types else [])
            r = await client.get("", params=query)
            found = (
                {e["resource"]["id"] for e in r.json().get("entry", [])}
                if r.status_code == 200
                else set()
            )
            if pid not in found:
                failed.append((query, r.status_code, r.text[:200]))
    assert not failed, failed
    r = await client.get("", params={"_type": "Observation,Patient"})
    assert r.status_code == 200, r.text
    assert {e["resource"]["resourceType"] for e in r.json()["entry"]} == {"Patient", "Observation"}
    # with a single _type, that type's own parameters too (as the _type documentation says)
    r = await client.get("", params={"_type": "Patient", "gender": "unknown", "_id": pid})
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid]
    # and what is not listed is not served there
    for query in ({"name": "x"}, {"_list": "x"}, {"_has:Observation:subject:code": "x"}):
        assert not set(query) & set(names)
        r = await client.get("", params=query, headers={"Prefer": "handling=strict"})
        assert r.status_code == 400, (query, r.text)
