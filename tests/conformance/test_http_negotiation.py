"""Content negotiation: the fhirVersion media-type parameter, _format, the body of POST _search.

R4 http.html#version-parameter: the client names the FHIR version with the fhirVersion parameter
of the media type ("application/fhir+json; fhirVersion=4.0"); when the server cannot serve that
version for Accept it SHOULD answer 406 Not Acceptable, and a body in an unsupported version is an
unsupported media type (RFC 9110 §15.5.16: 415). R4 http.html#mime-type: _format overrides Accept;
a "+" in a query string that was not percent-encoded arrives as a space, and a space is never
valid inside a media type, so "application/fhir json" can only mean application/fhir+json.
R4 search.html "Search via POST": the parameters travel as application/x-www-form-urlencoded;
any other content type is not a search body.
"""

from __future__ import annotations

import httpx
import pytest

from ._helpers import FHIR_JSON, all_versions, assert_outcome, create, patient

FORM = "application/x-www-form-urlencoded"


# --- fhirVersion in Accept: 406 when it is not R4 ------------------------------------------
@pytest.mark.parametrize(
    "accept",
    [
        f"{FHIR_JSON}; fhirVersion=3.0",
        f"{FHIR_JSON};fhirVersion=5.0",
        f'{FHIR_JSON}; fhirVersion="1.0"',
        "application/json; fhirVersion=3.0",
        f"{FHIR_JSON}; fhirVersion=3.0, application/json; fhirVersion=3.0",
        f"{FHIR_JSON}; fhirVersion=4.0; q=0, {FHIR_JSON}; fhirVersion=3.0",
    ],
)
@pytest.mark.parametrize("url", ["/metadata", "/Patient", "/Patient/p1"])
async def test_accept_other_fhir_version_is_406(client, accept, url):
    r = await client.get(url, headers={"accept": accept})
    outcome = assert_outcome(r, 406)
    assert "version" in outcome["issue"][0]["diagnostics"], outcome


async def test_accept_json_with_q_zero_is_406(client):
    assert_outcome(await client.get("/metadata", headers={"accept": f"{FHIR_JSON};q=0"}), 406)


@pytest.mark.parametrize(
    "accept",
    [
        f"{FHIR_JSON}; fhirVersion=4.0",
        f"{FHIR_JSON}; fhirVersion=4.0.1",
        f"{FHIR_JSON}; FHIRVERSION=4.0",
        f'{FHIR_JSON}; charset=utf-8; fhirVersion="4.0"',
        f"{FHIR_JSON}; fhirVersion=3.0, {FHIR_JSON}; fhirVersion=4.0",
        f"{FHIR_JSON}; fhirVersion=3.0, */*;q=0.1",
        "*/*",
    ],
)
async def test_accept_r4_is_served(client, accept):
    r = await client.get("/metadata", headers={"accept": accept})
    assert r.status_code == 200, r.text
    assert r.json()["fhirVersion"] == "4.0.1"


async def test_format_with_other_fhir_version_is_406(client):
    r = await client.get("/metadata", params={"_format": f"{FHIR_JSON}; fhirVersion=3.0"})
    assert_outcome(r, 406)
    r = await client.get("/metadata", params={"_format": f"{FHIR_JSON}; fhirVersion=4.0"})
    assert r.status_code == 200, r.text


# --- fhirVersion in Content-Type: 415 when it is not R4 ------------------------------------
@pytest.mark.parametrize("version", ["3.0", "1.0", "5.0"])
@pytest.mark.parametrize("method, url", [("POST", "/Patient"), ("PUT", "/Patient/fv")])
async def test_content_type_other_fhir_version_is_415(client, version, method, url):
    r = await client.request(
        method,
        url,
        json=patient("fv", id="fv"),
        headers={"content-type": f"{FHIR_JSON}; fhirVersion={version}"},
    )
    assert_outcome(r, 415)
    assert await all_versions(client) == []


@pytest.mark.parametrize("version", ["4.0", "4.0.1"])
async def test_content_type_r4_is_accepted(client, version):
    r = await client.post(
        "/Patient",
        json=patient("fv4"),
        headers={"content-type": f"{FHIR_JSON}; charset=utf-8; fhirVersion={version}"},
    )
    assert r.status_code == 201, r.text


# --- _format with an unencoded '+' --------------------------------------------------------
@pytest.mark.parametrize(
    "fmt", ["application/fhir+json", "application/fhir+json;fhirVersion=4.0", "application/json"]
)
async def test_format_with_unencoded_plus(client, fmt):
    p = await create(client, patient("fmt"))
    # The '+' goes on the wire as is: a form decoder reads it as a space.
    url = httpx.URL(f"http://testserver/fhir/Patient/{p['id']}?_format={fmt}")
    assert url.raw_path.endswith(fmt.encode()), url.raw_path
    r = await client.get(url)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == p["id"]
    assert r.headers["content-type"].startswith(FHIR_JSON)


async def test_format_xml_still_406(client):
    r = await client.get(httpx.URL("http://testserver/fhir/metadata?_format=application/fhir+xml"))
    assert_outcome(r, 406)


# --- POST _search: the body is a form ------------------------------------------------------
async def _post(
    client: httpx.AsyncClient, url: str, ctype: str | None, body: bytes
) -> httpx.Response:
    req = client.build_request("POST", url, content=body)
    if ctype is None:
        del req.headers["content-type"]
    else:
        req.headers["content-type"] = ctype
    return await client.send(req)


@pytest.mark.parametrize("url", ["/Patient/_search", "/_search?_type=Patient"])
@pytest.mark.parametrize(
    "ctype, body",
    [
        (FHIR_JSON, b""),
        ("application/json", b""),
        (FHIR_JSON, b'{"resourceType": "Parameters"}'),
        ("text/plain", b"gender=male"),
        ("multipart/form-data; boundary=x", b""),
    ],
)
async def test_post_search_needs_a_form_body(client, url, ctype, body):
    await create(client, patient("s1"))
    r = await _post(client, url, ctype, body)
    assert_outcome(r, 415)


@pytest.mark.parametrize("url", ["/Patient/_search", "/_search?_type=Patient"])
@pytest.mark.parametrize(
    "ctype, body, hits",
    [
        (FORM, b"", 2),
        (f"{FORM}; charset=utf-8", b"", 2),
        ("Application/X-WWW-Form-Urlencoded", b"gender=male", 1),
        (FORM, b"gender=male", 1),
        (None, b"", 2),
    ],
)
async def test_post_search_form_or_nothing(client, url, ctype, body, hits):
    await create(client, patient("s1", gender="male"))
    await create(client, patient("s2", gender="female"))
    r = await _post(client, url, ctype, body)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == hits
