"""History (R4 http.html §history, §paging).

- "The return content is a Bundle with type set to history containing the specified version
  history, sorted with oldest versions last, and including deleted resources."
- "If the entry.request.method is a PUT or a POST, the entry SHALL contain a resource."; a delete
  is shown with "no resource included for a delete" and request.method DELETE.
- "_since: Only include resource versions that were created at or after the given instant"
- "_count: ... The server is not bound to return the number requested, but cannot return more";
  paging: "respect the specified _count across pages"; "The client must use the server supplied
  links in order to traverse the pages."
"""

from __future__ import annotations

import asyncio

from ._helpers import create, observation, patient


async def get_bundle(client, url: str, **params) -> dict:
    r = await client.get(url, params=params or None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "history"
    return body


def version_of(e: dict) -> int:
    etag = e["response"]["etag"] if "response" in e and "etag" in e["response"] else None
    if etag:
        return int(etag.strip('W/"'))
    return int(e["resource"]["meta"]["versionId"])


async def make_versions(client) -> dict:
    """A Patient with 4 versions: create, update, update, delete."""
    p = await create(client, patient("h1", gender="male"))
    pid = p["id"]
    for g in ("female", "other"):
        r = await client.put(f"/Patient/{pid}", json={**p, "gender": g})
        assert r.status_code == 200
    assert (await client.delete(f"/Patient/{pid}")).status_code in (200, 204)
    return p


async def test_instance_history_newest_first_with_delete_entry(client):
    p = await make_versions(client)
    body = await get_bundle(client, f"/Patient/{p['id']}/_history")
    entries = body["entry"]
    assert len(entries) == 4
    if "total" in body:
        assert body["total"] == 4
    assert [version_of(e) for e in entries] == [4, 3, 2, 1]
    delete = entries[0]
    assert delete["request"]["method"] == "DELETE"
    assert "resource" not in delete
    assert delete["request"]["url"].endswith(f"Patient/{p['id']}")
    for e in entries[1:]:
        assert e["request"]["method"] in ("POST", "PUT")
        assert e["resource"]["id"] == p["id"]  # PUT/POST entries SHALL contain a resource
        assert e["resource"]["meta"]["versionId"] == str(version_of(e))
    assert entries[3]["request"]["method"] == "POST"
    assert [e["resource"]["gender"] for e in entries[1:]] == ["other", "female", "male"]


async def test_type_history_only_that_type_newest_first(client):
    p1 = await create(client, patient("t1"))
    obs = await create(client, observation(f"Patient/{p1['id']}"))
    p2 = await create(client, patient("t2"))
    await client.put(f"/Patient/{p1['id']}", json={**p1, "active": True})
    body = await get_bundle(client, "/Patient/_history")
    entries = body["entry"]
    assert all("/Patient/" in e["fullUrl"] for e in entries)
    assert len(entries) == 3
    keys = [(e["resource"]["id"], version_of(e)) for e in entries]
    assert keys == [(p1["id"], 2), (p2["id"], 1), (p1["id"], 1)]
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    obs_hist = await get_bundle(client, "/Observation/_history")
    assert [e["resource"]["id"] for e in obs_hist["entry"]] == [obs["id"]]


async def test_system_history_spans_types(client):
    p = await create(client, patient("s1"))
    o = await create(client, observation(f"Patient/{p['id']}"))
    await client.delete(f"/Observation/{o['id']}")
    body = await get_bundle(client, "/_history")
    entries = body["entry"]
    assert len(entries) == 3
    assert entries[0]["request"]["method"] == "DELETE" and "resource" not in entries[0]
    assert entries[0]["fullUrl"].endswith(f"Observation/{o['id']}")
    assert entries[1]["resource"]["id"] == o["id"]
    assert entries[2]["resource"]["id"] == p["id"]


async def test_since_includes_versions_at_or_after_the_instant(client):
    p = await create(client, patient("since"))
    await asyncio.sleep(0.01)
    r = await client.put(f"/Patient/{p['id']}", json={**p, "active": True})
    cut = r.json()["meta"]["lastUpdated"]  # the instant of version 2
    await client.put(f"/Patient/{p['id']}", json={**p, "active": False})
    other = await create(client, patient("since-2"))
    for url in (f"/Patient/{p['id']}/_history", "/Patient/_history", "/_history"):
        body = await get_bundle(client, url, _since=cut)
        got = [(e["resource"]["id"], version_of(e)) for e in body["entry"]]
        expected = [(other["id"], 1), (p["id"], 3), (p["id"], 2)]
        if url.startswith("/Patient/" + p["id"]):
            expected = [(p["id"], 3), (p["id"], 2)]
        assert got == expected, url
        for e in body["entry"]:
            assert e["resource"]["meta"]["lastUpdated"] >= cut
    future = await get_bundle(client, "/_history", _since="2999-01-01T00:00:00Z")
    assert future.get("entry", []) == []


async def _walk(client, first_url: str, count: int, between=None) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    url: str | None = first_url
    page = 0
    while url:
        body = await get_bundle(client, url)
        entries = body.get("entry", [])
        assert len(entries) <= count  # "cannot return more"
        seen += [(e["fullUrl"], version_of(e)) for e in entries]
        nxt = [lk["url"] for lk in body.get("link", []) if lk["relation"] == "next"]
        url = nxt[0] if nxt else None
        page += 1
        if between is not None and url:
            await between(page)
        assert page < 100
    return seen


async def test_count_and_next_links_page_through_every_version_once(client):
    p = await create(client, patient("pg"))
    for i in range(12):
        await client.put(f"/Patient/{p['id']}", json={**p, "multipleBirthInteger": i + 1})
    for i in range(10):
        await create(client, patient(f"pg-{i}"))
    everything = await _walk(client, "/_history?_count=1000", 1000)
    assert len(everything) == 23
    paged = await _walk(client, "/_history?_count=5", 5)
    assert paged == everything
    inst = await _walk(client, f"/Patient/{p['id']}/_history?_count=4", 4)
    assert [v for _, v in inst] == list(range(13, 0, -1))


async def test_paging_is_stable_while_new_versions_are_written(client):
    p = await create(client, patient("live"))
    for i in range(14):
        await client.put(f"/Patient/{p['id']}", json={**p, "multipleBirthInteger": i + 1})
    before = await _walk(client, "/Patient/_history?_count=1000", 1000)
    assert len(before) == 15

    async def write(page: int) -> None:
        await client.put(f"/Patient/{p['id']}", json={**p, "active": page % 2 == 0})
        await create(client, patient(f"live-new-{page}"))

    seen = await _walk(client, "/Patient/_history?_count=4", 4, between=write)
    assert len(seen) == len(set(seen)), "a version was returned twice"
    missing = set(before) - set(seen)
    assert not missing, f"versions skipped while paging: {missing}"


async def test_at_returns_the_versions_current_during_the_period(client):
    # R4 http.html#history: "_at: Only include resource versions that were current at some
    # point during the time period specified in the date time value (may be more than one)".
    p = await create(client, patient("at"))
    await asyncio.sleep(0.01)
    v2 = (await client.put(f"/Patient/{p['id']}", json={**p, "active": True})).json()
    await asyncio.sleep(0.01)
    await client.put(f"/Patient/{p['id']}", json={**p, "active": False})
    url = f"/Patient/{p['id']}/_history"

    async def versions(at: str) -> list[int]:
        body = await get_bundle(client, url, _at=at)
        assert body["total"] == len(body.get("entry", []))
        return [version_of(e) for e in body.get("entry", [])]

    t1, t2 = p["meta"]["lastUpdated"], v2["meta"]["lastUpdated"]
    assert await versions(t1) == [1]
    assert await versions(t2) == [2]  # v1 was replaced at that very instant
    assert await versions(t1[:10]) == [3, 2, 1]  # the whole day
    assert await versions(t1[:4]) == [3, 2, 1]  # the whole year
    assert await versions(f"ge{t2}") == [3, 2]
    assert await versions(f"lt{t1}") == []
    assert await versions("1999") == []
    r = await client.get(url, params={"_at": "yesterday"})
    assert r.status_code == 400


async def test_instance_history_of_a_resource_never_stored_is_404(client):
    assert (await client.get("/Patient/never-stored/_history")).status_code == 404
    p = await create(client, patient("gone"))
    assert (await client.delete(f"/Patient/{p['id']}")).status_code in (200, 204)
    body = await get_bundle(client, f"/Patient/{p['id']}/_history")  # deleted: still has one
    assert len(body["entry"]) == 2


async def test_version_and_cursor_beyond_any_stored_number_are_client_errors(client):
    p = await create(client, patient("big"))
    huge = "9" * 25
    r = await client.get(f"/Patient/{p['id']}/_history/{huge}")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    r = await client.get("/Patient/_history", params={"_cursor": huge})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["_cursor"]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{p['id']}/_history/{huge}"}},
            {"request": {"method": "GET", "url": f"Patient/{p['id']}"}},
        ],
    }
    r = await client.post("", json=batch)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("404") and statuses[1].startswith("200")
