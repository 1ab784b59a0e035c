"""HL7 v2 messages through `POST /fhir/$ingest?source=hl7v2` on SQLite and PostgreSQL: stored
as the FHIR the corpus expects, found by search afterwards (Chinese names from UTF-8 and
GB18030 messages), ADT^A08 updating the Patient an A01 created, a message sent again updating
and never duplicating, a refused message storing nothing and answering a NAK that locates
the problem, and the mutual-recognition mark set by the normal write path."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.hl7v2.corpus import raw
from tests.policy.builders import coding, ext, post

ER7 = "x-application/hl7-v2+er7"
ID_CARD = "urn:oid:2.16.156.10011.1.3"
REPORT = "urn:oid:2.16.156.10011.1.33"
LAB_USCC = "12410105MB1A2B3CXG"
MARK = "https://fhir.jtys.cn/StructureDefinition/cn-result-recognition"


async def ingest(
    client: httpx.AsyncClient, body: bytes, content_type: str = ER7, **params: str
) -> httpx.Response:
    return await client.post(
        "/$ingest",
        params={"source": "hl7v2", **params},
        content=body,
        headers={"content-type": content_type},
    )


def part(record: dict[str, Any], name: str) -> Any:
    for p in record["part"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k != "name")
    return None


def records(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in answer["parameter"] if p["name"] == "record"]


def count(answer: dict[str, Any], name: str) -> int:
    return next(p["valueInteger"] for p in answer["parameter"] if p["name"] == name)


async def search(client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    r = await client.get(f"/{query}")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


async def accepted(client: httpx.AsyncClient, case: str) -> dict[str, Any]:
    r = await ingest(client, raw(case))
    assert r.status_code == 200, r.text
    (record,) = records(r.json())
    ack = part(record, "ack")
    assert part(record, "status") in ("stored", "updated"), record
    assert ack.split("\r")[1].startswith("MSA|AA|"), ack
    return record


async def test_adt_identity_and_update(client: httpx.AsyncClient) -> None:
    await accepted(client, "adt-a01-utf8")
    await accepted(client, "adt-a04-gb18030")
    (zhang,) = await search(client, "Patient?name=张三")
    assert zhang["birthDate"] == "1980-03-15" and zhang["gender"] == "female"
    assert {i.get("system") for i in zhang["identifier"]} >= {
        ID_CARD,
        "urn:oid:2.16.156.10011.1.19",
    }
    assert [n.get("family") for n in zhang["name"]] == ["张三", "ZHANG"]  # PID-5 repeats
    (li,) = await search(client, "Patient?name=李四")  # from GB18030
    assert li["address"][0]["line"] == ["经三路&纬五路口 3^2单元"]  # \T\ and \S\ escapes
    assert (await search(client, f"Patient?identifier={ID_CARD}|410102197506200031"))[0][
        "id"
    ] == li["id"]

    record = await accepted(client, "adt-a08-update")  # the same resident: updated
    assert part(record, "status") == "updated"
    (after,) = await search(client, f"Patient?identifier={ID_CARD}|410102198003150022")
    assert after["id"] == zhang["id"]
    assert after["telecom"][0]["value"] == "13700137000"
    assert after["address"][0]["line"] == ["花园路8号"]
    assert after["meta"]["versionId"] == "2"
    assert len(await search(client, "Patient?name=张三")) == 1

    docs = await search(client, f"DocumentReference?subject=Patient/{zhang['id']}")
    assert len(docs) == 2  # A01 and A08, each kept for audit
    kept = {base64.b64decode(d["content"][0]["attachment"]["data"]) for d in docs}
    assert kept == {raw("adt-a01-utf8"), raw("adt-a08-update")}


async def test_oru_report_observations_specimen_lab(client: httpx.AsyncClient) -> None:
    record = await accepted(client, "oru-r01-utf8")
    assert part(record, "status") == "stored"
    (report,) = await search(client, f"DiagnosticReport?identifier={REPORT}|JY202612010001")
    (patient,) = await search(client, "Patient?name=张三")  # created by the report
    assert report["subject"]["reference"] == f"Patient/{patient['id']}"
    assert report["status"] == "final" and len(report["result"]) == 5
    (lab,) = await search(
        client, f"Organization?identifier=https://fhir.jtys.cn/sid/uscc|{LAB_USCC}"
    )
    assert report["performer"] == [{"reference": f"Organization/{lab['id']}"}]
    assert lab["name"] == "郑州市金水区检验中心"
    (glucose,) = await search(client, "Observation?code=http://loinc.org|1558-6")
    assert glucose["valueQuantity"] == {
        "value": 6.80,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert glucose["interpretation"][0]["coding"][0]["code"] == "H"
    assert glucose["referenceRange"][0]["low"]["value"] == 3.9
    assert glucose["effectiveDateTime"] == "2026-12-01T07:30:00+08:00"
    r = await client.get(f"/Observation/{glucose['id']}")
    assert b'"value":6.80' in r.content.replace(b" ", b"")  # as the lab wrote it
    (crp,) = await search(client, "Observation?code=http://loinc.org|1988-5")
    assert crp["valueQuantity"]["comparator"] == "<"  # SN
    (hbsag,) = await search(client, "Observation?code=http://loinc.org|5196-1")
    assert hbsag["valueCodeableConcept"]["coding"][0]["code"] == "260385009"  # CE
    (specimen,) = await search(
        client, "Specimen?identifier=https://fhir.jtys.cn/sid/specimen|SP20261201001"
    )
    assert report["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}]
    (doc,) = await search(client, f"DocumentReference?related=DiagnosticReport/{report['id']}")
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == raw("oru-r01-utf8")

    again = await accepted(client, "oru-r01-utf8")  # sent again: updated, nothing duplicated
    assert part(again, "status") == "updated" and part(again, "created") is None
    assert len(await search(client, "Observation?subject=Patient/" + patient["id"])) == 5
    assert len(await search(client, "DiagnosticReport")) == 1
    assert len(await search(client, "Patient")) == 1


async def test_gb18030_escapes_order_and_several_reports(client: httpx.AsyncClient) -> None:
    await accepted(client, "oru-r01-gb18030-escapes")
    (colour,) = await search(client, "Observation?code=http://loinc.org|5778-6")
    assert colour["valueString"] == "淡黄色|清亮 ^ 无沉淀 & 送检人李医生 \\备注\\"
    (potassium,) = await search(client, "Observation?code=http://loinc.org|2823-3")
    assert [i["coding"][0]["code"] for i in potassium["interpretation"]] == ["H", "A"]
    assert (await search(client, "Patient?name=李四"))[0]["gender"] == "male"

    await accepted(client, "oru-r01-out-of-order")
    (cbc,) = await search(client, f"DiagnosticReport?identifier={REPORT}|JY202612020001")
    assert len(cbc["result"]) == 3  # the OBX before the only OBR is its own
    (wbc,) = await search(client, "Observation?code=http://loinc.org|6690-2")
    assert wbc["valueQuantity"]["code"] == "10*9/L"  # 10\S\9/L

    record = await accepted(client, "oru-r01-two-reports")
    assert len([r for r in part_all(record, "created") if r.startswith("DiagnosticReport/")]) == 2


def part_all(record: dict[str, Any], name: str) -> list[str]:
    return [p["valueReference"]["reference"] for p in record["part"] if p["name"] == name]


@pytest.mark.parametrize(
    ("case", "code", "where"),
    [
        ("malformed-bad-number", "AE", "OBX^2^5"),
        ("malformed-no-control-id", "AE", "MSH^1^10"),
        ("malformed-broken-segment", "AE", ""),
        ("malformed-obx-before-two-obr", "AE", "OBX^1"),
        ("unsupported-orm", "AR", "MSH^1^9"),
        ("malformed-adt-no-id-card", "AE", "PID^1^3^^1"),
    ],
)
async def test_refused_messages_store_nothing(
    client: httpx.AsyncClient, case: str, code: str, where: str
) -> None:
    r = await ingest(client, raw(case))
    assert r.status_code == 200, r.text
    answer = r.json()
    (record,) = records(answer)
    assert part(record, "status") == "rejected" and count(answer, "rejected") == 1
    ack = part(record, "ack").split("\r")
    assert ack[1].startswith(f"MSA|{code}|")
    err = next(s for s in ack if s.startswith("ERR|"))
    assert err.split("|")[2] == where
    outcome = part(record, "outcome")
    assert outcome["issue"][0]["location"][0].startswith("message[1]")
    for kind in ("Patient", "Organization", "DiagnosticReport", "Observation", "DocumentReference"):
        assert await search(client, kind) == [], kind


async def test_a_fhir_rule_broken_is_located_and_nothing_stored(client: httpx.AsyncClient) -> None:
    """OBR-22 with a date only cannot be DiagnosticReport.issued (an instant): the transaction
    fails at validation, the NAK points at OBR-22, and the Patient the message would have
    created is not there either."""
    text = (
        raw("oru-r01-utf8")
        .decode("utf-8")
        .replace("||20261201152000+0800||CH|F", "||20261201||CH|F")
    )
    r = await ingest(client, text.encode("utf-8"))
    (record,) = records(r.json())
    assert part(record, "status") == "rejected"
    ack = part(record, "ack").split("\r")
    assert ack[1].startswith("MSA|AE|LAB20261201001")
    assert any(s.startswith("ERR||OBR^1^22|") for s in ack), ack
    issue = part(record, "outcome")["issue"][0]
    assert issue["location"] == ["message[1].OBR[1]-22"]
    assert issue["expression"][0].endswith(".issued")
    assert await search(client, "Patient") == []


async def test_several_messages_in_one_body_and_charset_from_content_type(
    client: httpx.AsyncClient,
) -> None:
    body = raw("adt-a01-utf8") + raw("malformed-bad-number") + raw("oru-r01-utf8")
    r = await ingest(client, body)
    answer = r.json()
    assert [part(x, "status") for x in records(answer)] == ["stored", "rejected", "stored"]
    # no MSH-18: the Content-Type's charset decodes it
    gb = raw("adt-a04-gb18030").decode("gb18030").replace("|CHN|GB 18030-2000", "|CHN|")
    r = await ingest(client, gb.encode("gb18030"), "text/plain; charset=GB18030")
    assert part(records(r.json())[0], "status") == "stored"
    assert len(await search(client, "Patient?name=李四")) == 1


async def test_unreadable_body_is_a_400(client: httpx.AsyncClient) -> None:
    r = await ingest(client, b"hello")
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
    r = await ingest(client, b"")
    assert r.status_code == 400


async def test_recognition_mark_on_results_of_a_qualified_lab(client: httpx.AsyncClient) -> None:
    """The lab is in the directory with a passed 室间质评 covering the result's day: its
    recognisable results (fasting glucose, HbA1c) carry the mark, others none."""
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
            "identifier": [{"system": "https://fhir.jtys.cn/sid/uscc", "value": LAB_USCC}],
            "extension": [
                ext("cn-institution-level", valueCoding=coding("institution-level", "2A")),
                qualification,
            ],
            "name": "郑州市金水区检验中心",
            "address": [{"extension": [ext("cn-admin-division", valueCode="410105")]}],
        },
    )
    await accepted(client, "oru-r01-utf8")
    marks = {}
    for obs in await search(client, "Observation"):
        code = obs["code"]["coding"][0]["code"]
        marks[code] = next(
            (e["valueCoding"]["code"] for e in obs.get("extension", []) if e["url"] == MARK), None
        )
    assert marks["1558-6"] == "region" and marks["4548-4"] == "region"
    assert marks["20454-5"] is None
    assert len(await search(client, "Organization")) == 1  # the directory's, not a new one
