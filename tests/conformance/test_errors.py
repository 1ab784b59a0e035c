"""Error handling: every failure a client can cause is a 4xx with an OperationOutcome.

R4 http.html: "400 Bad Request - resource could not be parsed or failed basic FHIR validation
rules"; "404 Not Found - resource type not supported, or not a FHIR end-point"; "Any of these
errors SHOULD be accompanied by an OperationOutcome resource"; "If the search fails ... the return
value SHALL be a status code 4xx or 5xx with an OperationOutcome". OperationOutcome.issue.expression
is "FHIRPath of element(s) related to issue". HTTP (RFC 9110): 405 for a method the target does
not support, 413 for content larger than the server will process, 415 for an unsupported media
type. R4 json.html: boolean primitives are JSON true/false; datatypes.html: string "SHALL NOT
contain Unicode character points below 32, except for u0009, u000D and u000A"; id is
[A-Za-z0-9\\-\\.]{1,64}.
"""

from __future__ import annotations

import copy
import json
import random

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings

from ._helpers import SYS, all_versions, assert_outcome, create, expressions, patient


# --- malformed bodies --------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, url",
    [
        ("POST", "/Patient"),
        ("PUT", "/Patient/p1"),
        ("POST", ""),
        ("PUT", "/Patient?identifier=a|b"),
    ],
)
@pytest.mark.parametrize(
    "body", [b"{bad", b'{"resourceType": "Patient",}', b"[1, 2", b"\xff\xfe{}"]
)
async def test_malformed_json_is_400(client, method, url, body):
    r = await client.request(method, url, content=body)
    assert_outcome(r, 400)
    assert await all_versions(client) == []


@pytest.mark.parametrize("key", ["gender", "id", "birthDate", "_gender"])
async def test_null_properties_are_400(client, key):
    # json.html: null only pads arrays to align them with their _element arrays.
    body = {**patient("nul"), key: None}
    r = await client.post("/Patient", json=body)
    assert assert_outcome(r, 400)["issue"][0]["expression"] == [f"Patient.{key.lstrip('_')}"]
    assert await all_versions(client) == []


@pytest.mark.parametrize(
    "method, url, body, where",
    [
        (
            "POST",
            "/Patient",
            b'{"resourceType":"Patient","gender":"male","name":[{"text":"a"}],"gender":"female"}',
            "Patient.gender",
        ),
        (
            "PUT",
            "/Patient/p1",
            b'{"resourceType":"Patient","id":"p1","name":[{"text":"a","text":"b"}]}',
            "Patient.name[0].text",
        ),
        (
            "POST",
            "",
            b'{"resourceType":"Bundle","type":"transaction","entry":[{"request":'
            b'{"method":"POST","url":"Patient","method":"PUT"},"resource":{"resourceType":"Patient"}}]}',
            "Bundle.entry[0].request.method",
        ),
    ],
)
async def test_repeated_json_properties_are_400(client, method, url, body, where):
    # R4 json.html: an object holds each property once; taking the last would silently drop data.
    r = await client.request(method, url, content=body)
    assert assert_outcome(r, 400)["issue"][0]["expression"] == [where]
    assert await all_versions(client) == []


@pytest.mark.parametrize(
    "ctype",
    [
        "application/xml",
        "text/plain",
        "application/fhir+xml",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",  # a search's body only
        "application/fhir+json; charset=iso-8859-1",  # FHIR JSON is UTF-8
    ],
)
@pytest.mark.parametrize(
    "method, url", [("POST", "/Patient"), ("PUT", "/Patient/p1"), ("POST", "")]
)
async def test_unsupported_content_type_is_415(client, ctype, method, url):
    body = json.dumps(patient("ct", id="p1")).encode()
    if url == "":
        body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": []}).encode()
    r = await client.request(method, url, content=body, headers={"content-type": ctype})
    assert_outcome(r, 415)
    assert await all_versions(client) == []


# --- invalid content: 400 and the FHIRPath of the element --------------------------------
@pytest.mark.parametrize(
    "change, path",
    [
        pytest.param({"birthDate": "2024-02-31"}, "Patient.birthDate", id="impossible-date"),
        pytest.param({"birthDate": "31/01/2024"}, "Patient.birthDate", id="date-format"),
        pytest.param({"birthDate": 20240101}, "Patient.birthDate", id="date-as-number"),
        pytest.param({"unknownElement": 1}, "Patient.unknownElement", id="unknown-element"),
        pytest.param({"name": [{"given": "三"}]}, "Patient.name[0].given", id="scalar-for-array"),
        pytest.param({"name": {"family": "张"}}, "Patient.name", id="object-for-array"),
        pytest.param(
            {"multipleBirthInteger": 3.5}, "Patient.multipleBirth.ofType(integer)", id="decimal-int"
        ),
        pytest.param({"active": "yes"}, "Patient.active", id="string-yes-for-boolean"),
        pytest.param({"active": "true"}, "Patient.active", id="string-true-for-boolean"),
        pytest.param({"active": 1}, "Patient.active", id="number-for-boolean"),
        pytest.param(
            {"telecom": [{"system": "phone", "value": "020-1234\u00005678"}]},
            "Patient.telecom[0].value",
            id="nul-in-string",
        ),
    ],
)
async def test_invalid_element_is_400_with_fhirpath(client, change, path):
    r = await client.post("/Patient", json={**patient("inv"), **change})
    outcome = assert_outcome(r, 400)
    assert path in expressions(outcome), outcome
    assert await all_versions(client) == []


async def test_invalid_element_on_update_and_in_bundle_is_located(client):
    p = await create(client, patient("loc"))
    r = await client.put(f"/Patient/{p['id']}", json={**p, "birthDate": "2024-02-31"})
    assert "Patient.birthDate" in expressions(assert_outcome(r, 400))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Patient"}, "resource": patient("ok")},
            {
                "request": {"method": "POST", "url": "Patient"},
                "resource": patient("bad", birthDate="2024-02-31"),
            },
        ],
    }
    out = assert_outcome(await client.post("", json=bundle), 400)
    exprs = expressions(out)
    assert any(e.startswith("Bundle.entry[1]") and e.endswith("birthDate") for e in exprs), out
    assert len(await all_versions(client)) == 1


@pytest.mark.parametrize("depth", [130, 200, 300])
async def test_deeply_nested_extensions_are_a_4xx(client, depth):
    # 130 levels of extension are 260 levels of JSON: more than orjson can write back, so
    # they are refused rather than stored unservable.
    ext: dict = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(depth):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    r = await client.post("/Patient", json={**patient("deep"), "extension": [ext]})
    assert_outcome(r)
    assert await all_versions(client) == []


@pytest.mark.parametrize("depth", [960, 1000])
async def test_deep_json_is_a_4xx(client, depth):
    body = b'{"resourceType":"Patient","extension":' + b"[" * depth + b"]" * depth + b"}"
    assert_outcome(await client.post("/Patient", content=body), 400)


async def test_pretty_printing_never_fails_a_response(client):
    ext: dict = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(110):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    r = await client.post("/Patient", json={**patient("deep-ok"), "extension": [ext]})
    assert r.status_code == 201, r.text
    for url in ("/Patient", "/Patient/_history", "/_history"):
        assert (await client.get(url, params={"_pretty": "true"})).status_code == 200, url


# --- body size limit ---------------------------------------------------------------------
@pytest.fixture
async def small_client(database_url, app):
    """The gateway's HTTP app built with a 1000-byte body limit, serving the running core.

    (Its own lifespan is not entered: starting a second core works, but exiting it inside the
    test loop hangs in OutboxRelay.stop() — see the report. Sharing the running core is enough
    for the size limit, which the HTTP edge enforces before any FHIR processing.)"""
    settings = Settings(
        database_url=database_url,
        redis_url=None,
        max_body_bytes=1000,
        validation_workers=0,
        _env_file=None,
    )
    small = create_app(settings)
    small.state.settings = settings
    small.state.core = app.state.core
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=small),
        base_url="http://testserver/fhir",
        headers={"content-type": "application/fhir+json"},
    ) as c:
        yield c


async def test_body_over_limit_is_413(client, small_client):
    before = await all_versions(client)  # the second app may install its own resources
    big = patient("big", name=[{"text": "张" * 600}])  # > 1000 bytes in UTF-8
    assert len(json.dumps(big, ensure_ascii=False).encode()) > 1000
    r = await small_client.post("/Patient", content=json.dumps(big, ensure_ascii=False).encode())
    assert_outcome(r, 413)
    r = await small_client.put("/Patient/big", content=json.dumps({**big, "id": "big"}).encode())
    assert_outcome(r, 413)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": big}],
    }
    assert_outcome(await small_client.post("", json=bundle), 413)

    async def chunks():  # no Content-Length: the limit must hold for a streamed body too
        for _ in range(20):
            yield b" " * 100
        yield json.dumps(patient("streamed")).encode()

    assert_outcome(await small_client.post("/Patient", content=chunks()), 413)
    assert await all_versions(client) == before
    small_ok = await small_client.post("/Patient", json=patient("small"))
    assert small_ok.status_code == 201


# --- routing errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, url",
    [
        ("GET", "/Foo"),
        ("GET", "/Foo/1"),
        ("POST", "/Foo"),
        ("PUT", "/Foo/1"),
        ("DELETE", "/Foo/1"),
        ("GET", "/Foo/_history"),
        ("GET", "/patient"),
        ("GET", "/Patients/1"),
    ],
)
async def test_unknown_resource_type_is_404(client, method, url):
    body = None
    if method in ("POST", "PUT"):
        body = json.dumps({"resourceType": "Foo", "id": "1"}).encode()
    assert_outcome(await client.request(method, url, content=body), 404)


@pytest.mark.parametrize(
    "method, url",
    [
        ("DELETE", "/metadata"),
        ("PUT", "/metadata"),
        ("PATCH", "/metadata"),
        ("POST", "/Patient/abc"),
        ("DELETE", "/_history"),
        ("POST", "/Patient/abc/_history"),
        ("DELETE", "/Patient/abc/_history/1"),
        ("PUT", "/Patient/abc/_history/1"),
        ("TRACE", "/Patient"),
    ],
)
async def test_wrong_method_is_405(client, method, url):
    body = b'{"resourceType":"Patient"}' if method in ("POST", "PUT", "PATCH") else None
    assert_outcome(await client.request(method, url, content=body), 405)


GARBAGE = [
    "/Patient/a/b/c/d",
    "/Patient/a/_history/1/x",
    "/Patient/a/_history/1/2/3",
    "/metadata/x",
    "/_history/x",
    "/Patient/_history/x/y",
    "/Patient/%00",
    "/Patient/..%2F..%2Fetc%2Fpasswd",
    "/Patient/" + "x" * 65,
    "/Patient/a b",
    "/Patient/%E5%BC%A0/_history/abc",
    "/$nope",
    "/Patient/$nope",
    "/Patient/a/$nope",
    "/Patient?_count=-1",
    "/Patient?_count=abc",
    "/Patient?birthdate=not-a-date",
    "/_history?_since=yesterday",
    "/_history?_count=x",
    "/Patient?_sort=nonsense",
]


@pytest.mark.parametrize("url", GARBAGE)
async def test_garbage_get_is_4xx_outcome(client, url):
    assert_outcome(await client.get(url))


# --- fuzz --------------------------------------------------------------------------------
_STRINGS = [
    "",
    " ",
    "x",
    "张三",
    "2024-02-31",
    "urn:uuid:",
    "\t",
    "\\",
    '"',
    "{}",
    "[]",
    "null",
    "ӛ" * 70,
    "../",
    "%00",
    'W/"1"',
    "Patient?identifier=",
    "😀",
]


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**63 - 1, 10**30])
    if kind == 2:
        return rng.choice([0.5, -1e308, 1e-300, 3.0])
    if kind in (3, 4, 5):
        return rng.choice(_STRINGS)
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {
        rng.choice(
            ["resourceType", "id", "url", "value", "extension", "reference", "x"]
        ): _random_value(rng, depth + 1)
        for _ in range(rng.randrange(3))
    }


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate_tree(rng: random.Random, doc):
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return _random_value(rng)
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = rng.randrange(3)
        if op == 0:
            parent[path[-1]] = _random_value(rng)
        elif op == 1 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(_STRINGS) or "k"] = _random_value(rng)
        else:
            parent.append(_random_value(rng))
    return doc


def _mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.randrange(3)
        if op == 0:
            del b[i]
        elif op == 1:
            b.insert(i, rng.choice(b'{}[]",:0aZ\\ \xe5\xbc\xa0\xff'))
        else:
            b[i] = rng.randrange(32, 127)
    return bytes(b)


async def test_fuzz_never_500_and_never_touches_other_data(client):
    """200 deterministic mutations of valid requests. Known crashers (U+0000, deep nesting, ids
    over 64 characters, DELETE/PUT entries without id) have their own xfail tests and are left
    out of the generators so this test keeps guarding everything else."""
    rng = random.Random(20241122)
    sentinel = await create(client, patient("sentinel", name=[{"text": "欧阳娜娜"}]))
    sentinel_obs = await create(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "体温"},
            "subject": {"reference": f"Patient/{sentinel['id']}"},
        },
    )
    r = await client.put("/Patient/fuzz-target", json=patient("fz", id="fuzz-target"))
    assert r.status_code == 201

    base_patient = patient(
        "fz",
        id="fuzz-target",
        active=True,
        gender="female",
        birthDate="1990-01-01",
        name=[{"family": "张", "given": ["三"]}],
        address=[{"city": "广州市"}],
        telecom=[{"system": "phone", "value": "1"}],
    )
    base_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:9d1e0000-0000-4000-8000-000000000001",
                "resource": patient("fz-b"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:9d1e0000-0000-4000-8000-000000000001"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {"resource": base_patient, "request": {"method": "PUT", "url": "Patient/fuzz-target"}},
            {"request": {"method": "GET", "url": "Patient?identifier=" + SYS + "|fz"}},
        ],
    }
    base_patch = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/name/0/given/-", "value": "丰"},
    ]

    def no_crasher(doc) -> bool:
        text = json.dumps(doc)
        return "\\u0000" not in text and text.count("[") < 50

    failures = []
    for case in range(200):
        target = case % 5
        if target == 0:
            method, url, doc = "POST", "/Patient", base_patient
        elif target == 1:
            method, url, doc = "PUT", "/Patient/fuzz-target", base_patient
        elif target == 2:
            method, url, doc = "POST", "", base_bundle
            if rng.random() < 0.5:
                doc = {**doc, "type": "batch"}
        elif target == 3:
            method, url, doc = "PATCH", "/Patient/fuzz-target", base_patch
        else:
            method, url, doc = "GET", "/Patient", None
        headers = {"content-type": "application/json-patch+json"} if method == "PATCH" else {}
        if method == "GET":
            params = {
                rng.choice(
                    [
                        "name",
                        "birthdate",
                        "identifier",
                        "_id",
                        "gender",
                        "_count",
                        "address-city",
                        "active",
                    ]
                ): str(_random_value(rng))
                for _ in range(rng.randint(1, 3))
            }
            r = await client.get(url, params=params, headers={"prefer": "handling=lenient"})
        elif rng.random() < 0.5:
            mutated = _mutate_tree(rng, doc)
            if not no_crasher(mutated):
                continue
            r = await client.request(
                method, url, content=json.dumps(mutated).encode(), headers=headers
            )
        else:
            raw = _mutate_bytes(rng, json.dumps(doc, ensure_ascii=False).encode())
            r = await client.request(method, url, content=raw, headers=headers)
        if r.status_code >= 500:
            failures.append((case, method, url, r.status_code, r.request.content[:300]))
        elif r.status_code >= 400:
            assert_outcome(r)
    assert not failures, failures
    assert (await client.get(f"/Patient/{sentinel['id']}")).json() == sentinel
    assert (await client.get(f"/Observation/{sentinel_obs['id']}")).json() == sentinel_obs
    hist = (await client.get(f"/Patient/{sentinel['id']}/_history")).json()
    assert len(hist["entry"]) == 1
