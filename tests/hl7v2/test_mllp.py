"""MLLP round trips against a real listener on a free loopback port (gateway.mllp, on the test
database, SQLite and PostgreSQL): several messages on one connection, each answered with its
ACK or NAK in order; concurrent connections; a block without the MLLP start byte refused
without closing the connection; what was acknowledged is stored, what was refused is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hl7.mllp import open_hl7_connection

from gateway.mllp import MllpServer
from tests.hl7v2.corpus import raw


@pytest.fixture
async def mllp(app, client: httpx.AsyncClient) -> AsyncIterator[MllpServer]:
    server = MllpServer(app.state.core, "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def msa(ack: bytes, charset: str = "utf-8") -> list[str]:
    segments = ack.decode(charset).split("\r")
    assert segments[0].startswith("MSH|^~\\&|"), segments
    return segments[1].split("|")


def oru(n: int) -> bytes:
    """The UTF-8 ORU with its own control ID, report number and specimen."""
    text = raw("oru-r01-utf8").decode("utf-8")
    return (
        text.replace("LAB20261201001", f"LAB-MLLP-{n:04d}")
        .replace("JY202612010001", f"JY-MLLP-{n:04d}")
        .replace("SP20261201001", f"SP-MLLP-{n:04d}")
        .encode("utf-8")
    )


async def test_several_messages_on_one_connection(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
    sent = [
        "adt-a01-utf8",
        "oru-r01-utf8",
        "malformed-bad-number",
        "adt-a04-gb18030",
        "adt-a08-update",
        "unsupported-orm",
    ]
    answers = []
    for case in sent:
        writer.writeblock(raw(case))
        await writer.drain()
        answers.append(await asyncio.wait_for(reader.readblock(), 30))
    writer.write(b"not a block\x1c\r")  # no 0x0B: refused, the connection stays
    await writer.drain()
    refused = msa(await asyncio.wait_for(reader.readblock(), 30))
    writer.writeblock(raw("oru-r01-gb18030-escapes"))
    await writer.drain()
    last = await asyncio.wait_for(reader.readblock(), 30)
    writer.close()

    codes = [
        msa(a, "gb18030" if "gb18030" in c else "utf-8")[1:3]
        for a, c in zip(answers, sent, strict=True)
    ]
    assert codes == [
        ["AA", "ADT0001"],
        ["AA", "LAB20261201001"],
        ["AE", "LAB20261202003"],
        ["AA", "ADT0002"],
        ["AA", "ADT0003"],
        ["AR", "ORM0001"],
    ]
    nak = answers[2].decode("utf-8").split("\r")
    assert nak[2].startswith("ERR||OBX^2^5|102^")
    assert refused[1] == "AR"
    assert msa(last, "gb18030")[1:3] == ["AA", "LAB20261201002"]
    assert b"|GB 18030-2000" in last.split(b"\r")[0]  # answered in the message's charset

    patients = (await client.get("/Patient")).json()
    assert sorted(e["resource"]["name"][0]["family"] for e in patients["entry"]) == ["张三", "李四"]
    reports = (await client.get("/DiagnosticReport")).json()
    assert len(reports["entry"]) == 2  # the two accepted ORUs; the refused one left nothing
    assert (await client.get("/Observation?code=http://loinc.org|2823-3")).json()["total"] == 1


async def test_concurrent_connections(mllp: MllpServer, client: httpx.AsyncClient) -> None:
    async def sender(first: int, count: int) -> list[list[str]]:
        reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
        out = []
        for n in range(first, first + count):
            writer.writeblock(oru(n))
            await writer.drain()
            out.append(msa(await asyncio.wait_for(reader.readblock(), 60))[1:3])
        writer.close()
        return out

    results = await asyncio.gather(*(sender(c * 10, 5) for c in range(4)))
    assert [r for rs in results for r in rs] == [
        ["AA", f"LAB-MLLP-{n:04d}"] for c in range(4) for n in range(c * 10, c * 10 + 5)
    ]
    total = (await client.get("/DiagnosticReport?_summary=count")).json()["total"]
    assert total == 20
    assert (await client.get("/Patient?_summary=count")).json()["total"] == 1  # one resident
    assert (await client.get("/Organization?_summary=count")).json()["total"] == 1  # one lab


async def test_a_failing_message_among_concurrent_ones(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    """Messages waiting together are written as one transaction; when one of them breaks a
    FHIR rule (OBR-22 a date only: no instant), the others are still stored and acknowledged,
    and the bad one is refused alone with nothing of it stored. The same message sent on two
    connections at once is stored once."""
    bad = oru(99).decode("utf-8").replace("||20261201152000+0800||CH|F", "||20261201||CH|F")

    async def send(message: bytes) -> list[str]:
        reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
        writer.writeblock(message)
        await writer.drain()
        ack = await asyncio.wait_for(reader.readblock(), 60)
        writer.close()
        return ack.decode("utf-8").split("\r")

    messages = [oru(n) for n in range(1, 6)] + [bad.encode("utf-8"), oru(1)]
    acks = await asyncio.gather(*(send(m) for m in messages))
    codes = [a[1].split("|")[1:3] for a in acks]
    assert codes[:5] == [["AA", f"LAB-MLLP-{n:04d}"] for n in range(1, 6)]
    assert codes[5] == ["AE", "LAB-MLLP-0099"]
    assert any(s.startswith("ERR||OBR^1^22|") for s in acks[5])
    assert codes[6] == ["AA", "LAB-MLLP-0001"]  # sent again: the same report, updated
    reports = (await client.get("/DiagnosticReport?_summary=count")).json()["total"]
    assert reports == 5
    none = await client.get("/DiagnosticReport?identifier=urn:oid:2.16.156.10011.1.33|JY-MLLP-0099")
    assert none.json()["total"] == 0


async def test_stopping_answers_what_it_received(
    mllp: MllpServer, client: httpx.AsyncClient
) -> None:
    """Stopped while messages are being written: the group in hand is written and
    acknowledged (the writer is not cancelled inside its transaction), a message that comes
    later is refused (AR: send it again) or its connection closed unanswered; what was
    acknowledged is stored, nothing else is."""

    async def send(n: int) -> str:
        reader, writer = await open_hl7_connection("127.0.0.1", mllp.port)
        try:
            writer.writeblock(oru(n))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readblock(), 60)
        except (asyncio.IncompleteReadError, ConnectionError):
            return "closed"
        finally:
            writer.close()
        return msa(ack)[1]

    senders = [asyncio.create_task(send(n)) for n in range(12)]
    while mllp._queue.empty() and mllp.handled == 0:  # the first messages are in
        await asyncio.sleep(0.005)
    await mllp.stop()
    answers = await asyncio.gather(*senders)
    assert set(answers) <= {"AA", "AR", "closed"}
    assert "AA" in answers
    stored = (await client.get("/DiagnosticReport?_summary=count")).json()["total"]
    assert stored == answers.count("AA")
