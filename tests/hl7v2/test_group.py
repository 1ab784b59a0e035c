"""Group commit with the group's identifiers resolved before its transaction
(gateway.hl7v2.group.Group.resolve, gateway.mllp's one query per type and system), on the test
database (SQLite and PostgreSQL): messages written together as one transaction still make
one resource per business identifier, whether it is new to the group, named by two of its
messages, or stored already; a group sent again updates what it stored; a new resource gets
the id its type and identifier give (the same in every `gateway mllp` process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.hl7v2.group import Group, Wanted, identifier_of, stable_id
from gateway.hl7v2.receive import Prepared, Received, prepare
from gateway.mllp import MllpServer
from tests.hl7v2.corpus import raw
from tests.policy.builders import coding, ext, post

MARK = "https://fhir.jtys.cn/StructureDefinition/cn-result-recognition"

NEW_RESIDENT = "410102200008080051"  # the resident of oru-r01-two-reports (赵强)
REPORTS = "urn:oid:2.16.156.10011.1.33"


@pytest.fixture
async def mllp(app, client: httpx.AsyncClient) -> AsyncIterator[MllpServer]:
    server = MllpServer(app.state.core, "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def message(n: int, new_resident: bool = True) -> bytes:
    """The UTF-8 ORU with its own control ID, report number and specimen; for 赵强, or for
    the corpus' resident (张三)."""
    text = raw("oru-r01-utf8").decode("utf-8")
    text = (
        text.replace("LAB20261201001", f"LAB-GRP-{n:04d}")
        .replace("JY202612010001", f"JY-GRP-{n:04d}")
        .replace("SP20261201001", f"SP-GRP-{n:04d}")
    )
    if new_resident:
        text = text.replace("410102198003150022", NEW_RESIDENT).replace(
            "|19800315|F", "|20000808|M"
        )
    return text.encode("utf-8")


async def write_together(server: MllpServer, raws: list[bytes]) -> list[Received]:
    """The messages written as one group (as if they had arrived while the previous group
    was being written)."""
    loop = asyncio.get_running_loop()
    pending = []
    for one in raws:
        ready = prepare(one, None)
        assert isinstance(ready, Prepared), ready
        pending.append((ready, loop.create_future()))
    await server._write(pending)
    return [done.result() for _, done in pending]


async def total(client: httpx.AsyncClient, query: str) -> int:
    return int((await client.get(f"{query}&_summary=count")).json()["total"])


async def test_two_messages_naming_one_new_patient(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    before = mllp.groups
    results = await write_together(mllp, [message(1), message(2), message(3, new_resident=False)])
    assert [r.code for r in results] == ["AA", "AA", "AA"]
    assert mllp.groups == before + 1  # one transaction for the three
    resident = f"Patient?identifier=urn:oid:2.16.156.10011.1.3|{NEW_RESIDENT}"
    assert await total(client, resident) == 1  # named by two messages: created once
    patient = (await client.get(resident)).json()["entry"][0]["resource"]["id"]
    assert [r for r in results[0].created if r.startswith("Patient/")] == [f"Patient/{patient}"]
    assert not [r for r in results[1].created if r.startswith("Patient/")]
    for n in (1, 2):
        report = (await client.get(f"/DiagnosticReport?identifier={REPORTS}|JY-GRP-{n:04d}")).json()
        assert report["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{patient}"
    assert await total(client, "/Patient?_id:missing=false") == 2
    assert await total(client, "/Organization?identifier=https://fhir.jtys.cn/sid/uscc|") == 1
    # a new resource's id is the one its type and business identifier give
    query = f"identifier={REPORTS}|JY-GRP-0001-1"
    observation = (await client.get(f"/Observation?{query}")).json()["entry"][0]["resource"]
    assert observation["id"] == stable_id("Observation", query)
    assert f"Observation/{observation['id']}" in results[0].created


async def test_a_group_sent_again_updates_what_it_stored(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    first = await write_together(mllp, [message(11), message(12)])
    assert [r.code for r in first] == ["AA", "AA"]
    # sent again, with a message naming the (now stored) patient for the first time
    again = await write_together(mllp, [message(11), message(13), message(12)])
    assert [r.code for r in again] == ["AA", "AA", "AA"]
    own = [
        r
        for r in first[0].created + first[0].updated
        if not r.startswith(("Patient/", "Organization/"))  # created only when none matches
    ]
    assert sorted(again[0].updated) == sorted(own)  # the same resources, written again
    assert not [r for r in again[0].created + again[2].created]  # nothing new
    assert not [r for r in again[1].created if r.startswith(("Patient/", "Organization/"))]
    resident = f"Patient?identifier=urn:oid:2.16.156.10011.1.3|{NEW_RESIDENT}"
    assert await total(client, resident) == 1
    assert await total(client, f"/DiagnosticReport?identifier={REPORTS}|JY-GRP-0011") == 1
    assert await total(client, f"/Observation?identifier={REPORTS}|JY-GRP-0012-3") == 1
    assert await total(client, f"/Observation?identifier={REPORTS}|") == 15  # 3 reports × 5 results


async def test_recognition_mark_in_a_group(mllp: MllpServer, client: httpx.AsyncClient) -> None:
    """The domain rules run on grouped messages as on one: the results of a qualified lab
    (stored in the directory, so named by its id, not sent) carry the mark."""
    qualification = ext(
        "cn-lab-qualification",
        extension=[
            {"url": "program", "valueCoding": coding("lab-qualification-program", "eqa")},
            {"url": "period", "valuePeriod": {"start": "2026-01-01", "end": "2026-12-31"}},
            {"url": "passed", "valueBoolean": True},
        ],
    )
    await post(
        client,
        {
            "resourceType": "Organization",
            "identifier": [
                {"system": "https://fhir.jtys.cn/sid/uscc", "value": "12410105MB1A2B3CXG"}
            ],
            "extension": [
                ext("cn-institution-level", valueCoding=coding("institution-level", "2A")),
                qualification,
            ],
            "name": "郑州市金水区检验中心",
            "address": [{"extension": [ext("cn-admin-division", valueCode="410105")]}],
        },
    )
    results = await write_together(mllp, [message(41), message(42, new_resident=False)])
    assert [r.code for r in results] == ["AA", "AA"]
    assert not [r for res in results for r in res.created if r.startswith("Organization/")]
    for n in (41, 42):
        found = await client.get(f"/Observation?identifier={REPORTS}|JY-GRP-{n:04d}-1")
        obs = found.json()["entry"][0]["resource"]
        marks = [e["valueCoding"]["code"] for e in obs.get("extension", []) if e["url"] == MARK]
        assert obs["code"]["coding"][0]["code"] == "1558-6" and marks == ["region"]
    assert await total(client, "/Organization?identifier=https://fhir.jtys.cn/sid/uscc|") == 1


async def test_a_stored_resource_is_written_by_its_id(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    """A report stored before (by a conditional update, under an id not derived from its
    identifier) is updated in place, not shadowed by a second one under the derived id."""
    query = f"DiagnosticReport?identifier={REPORTS}|JY-GRP-0021"
    ready = prepare(message(21), None)
    assert isinstance(ready, Prepared)
    alone = await mllp._single(ready)  # written alone, as before: conditional entries
    assert alone.code == "AA"
    first = (await client.get(f"/{query}")).json()["entry"][0]["resource"]["id"]
    assert first != stable_id("DiagnosticReport", query.split("?", 1)[1])
    results = await write_together(mllp, [message(21), message(22)])
    assert [r.code for r in results] == ["AA", "AA"]
    assert f"DiagnosticReport/{first}" in results[0].updated
    assert await total(client, f"/{query}") == 1


def test_identifier_of_takes_plain_identifier_searches_only() -> None:
    assert identifier_of("identifier=urn:oid:1.2|A-1") == ("urn:oid:1.2", "A-1")
    assert identifier_of("identifier=A-1") is None  # no system
    assert identifier_of("identifier=urn:oid:1.2|A,B") is None  # two values: the core decides
    assert identifier_of("identifier=urn:oid:1.2|A\\,B") is None
    assert identifier_of("name=x") is None
    assert identifier_of("identifier=s|a&name=x") is None


async def test_resolve_leaves_what_it_cannot_tell() -> None:
    """An identifier matching several stored resources, or one the lookup could not tell,
    stays a conditional entry: the transaction decides (and reports a located error)."""
    ready = prepare(message(31), None)
    assert isinstance(ready, Prepared)
    group = Group()
    group.add(ready)
    urls = [e["request"]["url"] for e in group.entries]

    async def lookup(wanted: Wanted) -> dict[tuple[str, str], dict[str, list[str]]]:
        out: dict[tuple[str, str], dict[str, list[str]]] = {}
        for (res_type, system), values in wanted.items():
            if res_type == "DiagnosticReport":
                out[(res_type, system)] = {v: ["a", "b"] for v in values}  # several
            elif res_type != "Specimen":  # the Specimen's: not told
                out[(res_type, system)] = {v: [] for v in values}
        return out

    await group.resolve(lookup)
    after = {e["resource"]["resourceType"]: e["request"] for e in group.entries}
    assert after["DiagnosticReport"]["url"] in urls  # still conditional
    assert after["Specimen"]["url"] in urls
    assert after["Observation"]["url"].startswith("Observation/")
    assert after["Patient"]["method"] == "POST"  # a new create-only resource: still conditional
    assert "ifNoneExist" in after["Patient"]


def test_identifier_lookups_go_at_most_so_many_values_a_query() -> None:
    from gateway.mllp import _chunks

    wanted = {("Observation", "s"): [f"o{i}" for i in range(7)], ("Patient", "p"): ["a", "b"]}
    chunks = list(_chunks(wanted, 3))
    assert all(sum(len(v) for v in c.values()) <= 3 for c in chunks)
    merged: dict[tuple[str, str], list[str]] = {}
    for c in chunks:
        for key, values in c.items():
            merged.setdefault(key, []).extend(values)
    assert merged == wanted  # every value once, in order
