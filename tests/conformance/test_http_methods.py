"""HTTP methods and the id in the URL: HEAD, OPTIONS, 405 with Allow, malformed ids.

RFC 9110 §9.1: "All general-purpose servers MUST support the methods GET and HEAD"; §9.3.2: "The
server SHOULD send the same header fields in response to a HEAD request as it would have sent if
the request method had been GET", and a HEAD response has no content; §15.5.6: "The origin server
MUST generate an Allow header field in a 405 response containing a list of the target resource's
currently supported methods"; §9.3.7: OPTIONS describes the communication options, and a server
"MUST generate a Content-Length field with a value of '0' if no content is to be sent".
R4 http.html: errors SHOULD carry an OperationOutcome; Bundle.entry.request.method includes HEAD.
R4 datatypes.html: id is [A-Za-z0-9\\-\\.]{1,64}; a URL whose id is not one is a bad request (400),
not an unknown path.
"""

from __future__ import annotations

import httpx
import pytest

from ._helpers import assert_outcome, create, entry, patient, status_code, tx


def allow(r: httpx.Response) -> set[str]:
    assert "allow" in r.headers, dict(r.headers)
    return {m.strip() for m in r.headers["allow"].split(",") if m.strip()}


# --- HEAD --------------------------------------------------------------------------------
async def test_head_mirrors_get_for_metadata_and_read(client):
    p = await create(client, patient("head"))
    for url in ("/metadata", f"/Patient/{p['id']}", f"/Patient/{p['id']}/_history/1"):
        got = await client.get(url)
        head = await client.head(url)
        assert got.status_code == 200, got.text
        assert head.status_code == 200, (url, head.status_code, head.text[:300])
        assert head.content == b""
        for name in ("content-type", "etag", "last-modified"):
            assert head.headers.get(name) == got.headers.get(name), (url, name)
        assert head.headers.get("content-length") == str(len(got.content)), url


@pytest.mark.parametrize(
    "url",
    ["/Patient", "/Patient?gender=unknown", "/_history", "/Patient/_history", "/?_type=Patient"],
)
async def test_head_is_served_wherever_get_is(client, url):
    await create(client, patient("head-s"))
    got = await client.get(url)
    head = await client.head(url)
    assert got.status_code == 200, got.text
    assert head.status_code == 200, (head.status_code, head.text[:300])
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_head_on_instance_history_and_operation(client):
    p = await create(client, patient("head-op"))
    for url in (f"/Patient/{p['id']}/_history", f"/Patient/{p['id']}/$everything"):
        head = await client.head(url)
        assert head.status_code == 200, (url, head.status_code, head.text[:300])
        assert head.content == b""


async def test_head_errors_and_conditional_read(client):
    missing = await client.head("/Patient/does-not-exist")
    assert missing.status_code == 404
    assert missing.content == b""
    assert missing.headers["content-type"].startswith("application/fhir+json")
    p = await create(client, patient("head-304"))
    r = await client.head(f"/Patient/{p['id']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    assert r.headers["etag"] == 'W/"1"'


async def test_head_does_not_write(client):
    r = await client.head("/Patient")
    assert r.status_code == 200
    r = await client.head("/")  # the base serves GET (system search): HEAD too, never a bundle
    assert r.status_code == 200
    assert r.content == b""


async def test_head_entry_in_batch(client):
    p = await create(client, patient("head-b"))
    r = await client.post("", json=tx(entry("HEAD", f"Patient/{p['id']}"), kind="batch"))
    assert r.status_code == 200, r.text
    [e] = r.json()["entry"]
    assert status_code(e["response"]) == 200, e
    assert e["response"]["etag"] == 'W/"1"'
    assert "resource" not in e


# --- 405 carries Allow; OPTIONS answers with Allow ----------------------------------------
ALL_T = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
INSTANCE = {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"}
READ_ONLY = {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize(
    "method, url, allowed",
    [
        ("DELETE", "/metadata", READ_ONLY),
        ("PUT", "/metadata", READ_ONLY),
        ("POST", "/Patient/abc", INSTANCE),
        ("DELETE", "/_history", READ_ONLY),
        ("POST", "/Patient/abc/_history", READ_ONLY),
        ("PUT", "/Patient/abc/_history/1", READ_ONLY),
        ("TRACE", "/Patient", ALL_T),
        ("GET", "/Patient/_search", {"POST", "OPTIONS"}),
        ("DELETE", "", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("DELETE", "/Patient/abc/$validate", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("PROPFIND", "/Patient/abc", INSTANCE),  # a method the gateway has never heard of
    ],
)
async def test_405_has_allow_and_outcome(client, method, url, allowed):
    body = b'{"resourceType":"Patient"}' if method in ("POST", "PUT", "PATCH") else None
    r = await client.request(method, url, content=body)
    assert_outcome(r, 405)
    assert allow(r) == allowed
    assert method not in allow(r)


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("/metadata", READ_ONLY),
        ("/Patient", ALL_T),
        ("/Patient/abc", INSTANCE),
        ("/Patient/abc/_history/1", READ_ONLY),
        ("/Patient/_search", {"POST", "OPTIONS"}),
        ("/Patient/$validate", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("", {"GET", "HEAD", "POST", "OPTIONS"}),
    ],
)
async def test_options_answers_allow(client, url, allowed):
    r = await client.options(url)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert allow(r) == allowed
    assert r.content == b""
    assert r.headers["content-length"] == "0"


@pytest.mark.parametrize("url", ["/Foo", "/Patient/a/b/c/d", "/Patient/$nope"])
async def test_options_on_unknown_path_is_404(client, url):
    assert_outcome(await client.options(url), 404)


# --- malformed id in the URL: 400 ---------------------------------------------------------
BAD_IDS = ["bad_id!", "a_b", "x" * 65, "a b", "%E5%BC%A0", "a%2Cb", "_x"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    "method, suffix",
    [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("PATCH", ""),
        ("GET", "/_history"),
        ("GET", "/_history/1"),
        ("GET", "/$everything"),
    ],
)
async def test_malformed_id_is_400(client, bad, method, suffix):
    body = None
    if method == "PUT":
        body = httpx.Request("PUT", "/", json=patient("bad", id=bad)).content
    elif method == "PATCH":
        body = b"[]"
    r = await client.request(method, f"/Patient/{bad}{suffix}", content=body)
    outcome = assert_outcome(r, 400)
    issue = outcome["issue"][0]
    assert issue["code"] == "invalid"
    assert "id" in issue["diagnostics"].lower(), issue


async def test_longest_id_is_fine(client):
    rid = "a" * 62 + "-."
    r = await client.put(f"/Patient/{rid}", json=patient("long", id=rid))
    assert r.status_code == 201, r.text
    assert (await client.get(f"/Patient/{rid}")).status_code == 200


@pytest.mark.parametrize(
    "url", ["/Patient/a/b", "/Patient/a/b/c/d", "/Patient/_history/x/y", "/Patient/_search/x"]
)
async def test_unknown_paths_stay_404(client, url):
    assert_outcome(await client.get(url), 404)
