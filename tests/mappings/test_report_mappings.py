"""The regional report formats through `POST /$ingest` on SQLite and PostgreSQL: a lab report
(检验报告, one row per item) becomes its Observations and one DiagnosticReport gathering them
under the 检验报告单号; an examination done at a community centre and read at a hospital
(基层检查、上级诊断) becomes the ImagingStudy and the DiagnosticReport whose performer is the
centre and whose resultsInterpreter the hospital's doctor and the hospital; the gateway's
recognition mark and `$recognized-results` apply to what was ingested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_ingest import count, ingest
from tests.policy.builders import ext, post
from tests.policy.test_recognition import mark_of, qualification

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
HOSPITAL, CENTRE = "12410100415801379B", "12410102400001010F"
ID_CARD = "410102195603120421"
LAB_REPORT = "urn:oid:2.16.156.10011.1.33"
EXAM_REPORT = "urn:oid:2.16.156.10011.1.32"
CS = "https://fhir.jtys.cn/CodeSystem"


def records(spec: str, case: str) -> list[dict[str, Any]]:
    data = json.loads((MAPPINGS / spec / "fixtures" / f"{case}.input.json").read_text("utf-8"))
    return list(data)


async def organization(client: httpx.AsyncClient, uscc: str, name: str, level: str) -> str:
    body = {
        "resourceType": "Organization",
        "identifier": [{"system": "https://fhir.jtys.cn/sid/uscc", "value": uscc}],
        "extension": [
            ext("cn-institution-level", valueCoding={"system": f"{CS}/institution-level",
                                                     "code": level}),
            qualification("2026-01-01", "2026-12-31"),
        ],
        "name": name,
        "address": [{"extension": [ext("cn-admin-division", valueCode="410102")]}],
    }  # fmt: skip
    return f"Organization/{(await post(client, body))['id']}"


async def staff(client: httpx.AsyncClient, org: str, uscc: str, number: str, name: str) -> str:
    doctor = await post(client, {"resourceType": "Practitioner", "name": [{"text": name}]})
    role = await post(
        client,
        {
            "resourceType": "PractitionerRole",
            "identifier": [
                {"system": "https://fhir.jtys.cn/sid/staff", "value": f"{uscc}-{number}"}
            ],
            "practitioner": {"reference": f"Practitioner/{doctor['id']}"},
            "organization": {"reference": org},
        },
    )
    return f"PractitionerRole/{role['id']}"


async def world(client: httpx.AsyncClient) -> dict[str, str]:
    hospital = await organization(client, HOSPITAL, "郑州市中心医院", "3A")
    centre = await organization(client, CENTRE, "建设西路社区卫生服务中心", "1A")
    patient = await post(
        client,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": ID_CARD}],
            "name": [{"text": "王秀英"}],
        },
    )
    return {
        "hospital": hospital,
        "centre": centre,
        "patient": f"Patient/{patient['id']}",
        "reviewer": await staff(client, hospital, HOSPITAL, "JY008", "周敏"),
        "reader": await staff(client, hospital, HOSPITAL, "YX021", "孙丽"),
        "gp": await staff(client, centre, CENTRE, "ZM001", "赵明"),
    }


async def one(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    found = (await client.get(f"/{query}")).json()
    assert found.get("total") == 1, found
    return dict(found["entry"][0]["resource"])


async def test_a_lab_report_row_by_row(client: httpx.AsyncClient) -> None:
    w = await world(client)
    done = await ingest(client, "lab-report", records("lab-report", "hba1c-and-lipids"))
    assert (done["stored"], done["rejected"]) == (3, 1), done
    assert done["records"][3]["issues"][0]["location"] == ["record[4].结果"]
    report = await one(client, f"DiagnosticReport?identifier={LAB_REPORT}|JY4101022026050100017")
    assert len(report["result"]) == 3  # gathered across the rows
    assert report["resultsInterpreter"][0]["reference"] == w["reviewer"]
    assert report["performer"][0]["reference"] == w["hospital"]
    items = {}
    for ref in report["result"]:
        obs = (await client.get(f"/{ref['reference']}")).json()
        items[obs["code"]["text"]] = obs
    hba1c, cholesterol, ketones = items["糖化血红蛋白"], items["总胆固醇"], items["尿酮体"]
    assert hba1c["valueQuantity"] == {"value": 7.80, "unit": "%"}
    assert cholesterol["code"]["coding"] == [{"system": "http://loinc.org", "code": "14647-2"}]
    assert ketones["valueString"] == "阴性"
    # the gateway's mark: recognisable items of a qualified lab only
    assert (mark_of(hba1c), mark_of(cholesterol), mark_of(ketones)) == ("region", "region", None)
    # sent again: updated, nothing duplicated, the report still holds its three items once
    again = await ingest(client, "lab-report", records("lab-report", "hba1c-and-lipids")[:3])
    assert (again["stored"], again["updated"]) == (0, 3), again
    assert await count(client, f"Observation?patient={w['patient']}") == 3
    report = await one(client, f"DiagnosticReport?identifier={LAB_REPORT}|JY4101022026050100017")
    assert len(report["result"]) == 3


async def test_examined_at_the_centre_and_read_at_the_hospital(client: httpx.AsyncClient) -> None:
    w = await world(client)
    done = await ingest(
        client, "exam-report", records("exam-report", "primary-care-exam-read-above")
    )
    assert (done["stored"], done["rejected"]) == (2, 1), done
    report = await one(client, f"DiagnosticReport?identifier={EXAM_REPORT}|JC4101022026041500031")
    assert report["performer"] == [
        {"reference": w["centre"], "identifier": {"system": "https://fhir.jtys.cn/sid/uscc",
                                                  "value": CENTRE}}
    ]  # fmt: skip
    interpreters = [r["reference"] for r in report["resultsInterpreter"]]
    assert interpreters == [w["reader"], w["hospital"]]
    study = (await client.get(f"/{report['imagingStudy'][0]['reference']}")).json()
    assert study["resourceType"] == "ImagingStudy"
    assert study["interpreter"][0]["reference"] == w["reader"]
    assert study["modality"][0]["code"] == "DX"
    assert {"system": "urn:dicom:uid", "value": "urn:oid:1.2.156.112605.2026041509200031"} in (
        study["identifier"]
    )
    # the images are the centre's: its level governs recognition, not the reading hospital's
    assert mark_of(report) == "region"
    pid = w["patient"].split("/")[1]
    asked = {"code": "http://loinc.org|36643-5", "date": "2026-05-01"}
    at_centre = await client.get(
        f"/Patient/{pid}/$recognized-results", params={**asked, "requester": w["centre"]}
    )
    assert at_centre.json()["entry"][0]["resource"]["id"] == report["id"]
    at_hospital = await client.get(
        f"/Patient/{pid}/$recognized-results", params={**asked, "requester": w["hospital"]}
    )
    issue = at_hospital.json()["entry"][0]["resource"]["issue"][0]
    assert issue["details"]["coding"][1]["code"] == "hierarchy"
    # the ECG read at the centre itself
    ecg = await one(client, f"DiagnosticReport?identifier={EXAM_REPORT}|JC4101022026041500032")
    assert [r["reference"] for r in ecg["resultsInterpreter"]] == [w["gp"], w["centre"]]
