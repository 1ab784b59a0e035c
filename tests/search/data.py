"""A small hand-made data set with known answers for every parameter type."""

from __future__ import annotations

from typing import Any

ID_CARD = "urn:oid:2.16.156.10011.1.2"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def patient(pid: str, family: str, given: str, **kw: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "NNCHN"}], "text": "居民身份证"},
                "system": ID_CARD,
                "value": f"ID-{pid}",
            }
        ],
        "name": [{"family": family, "given": [given], "text": family + given}],
        **kw,
    }


def obs(oid: str, subject: str, code: str, when: str | dict, value: Any = None, **kw: Any):
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {
            "coding": [{"system": LOINC, "code": code, "display": f"code {code}"}],
            "text": kw.pop("text", f"code {code}"),
        },
        "subject": {"reference": subject},
        **kw,
    }
    if isinstance(when, dict):
        res["effectivePeriod"] = when
    elif when:
        res["effectiveDateTime"] = when
    if value is not None:
        res["valueQuantity"] = value
    return res


def resources() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Organization",
            "id": "org1",
            "name": "越秀区社区卫生服务中心",
            "identifier": [{"system": "urn:uscc", "value": "12440000MB2C"}],
        },
        {
            "resourceType": "Practitioner",
            "id": "doc1",
            "name": [{"family": "李", "given": ["医生"]}],
        },
        patient(
            "p1",
            "张",
            "三",
            gender="male",
            birthDate="1960-05-01",
            address=[{"city": "广州市", "district": "越秀区"}],
            managingOrganization={"reference": "Organization/org1"},
            generalPractitioner=[{"reference": "Practitioner/doc1"}],
            meta={
                "tag": [{"system": "urn:t", "code": "vip"}],
                "profile": ["http://example.org/StructureDefinition/cn-patient"],
            },
        ),
        patient(
            "p2",
            "张",
            "小明",
            gender="male",
            birthDate="1985",
            address=[{"city": "深圳市"}],
            active=True,
        ),
        patient(
            "p3",
            "Müller",
            "Hans",
            gender="female",
            birthDate="1990-12-31",
            address=[{"city": "广州市"}],
            active=False,
        ),
        patient("p4", "王", "五", gender="unknown"),
        obs(
            "o1",
            "Patient/p1",
            "8302-2",
            "2015-06-01T10:00:00+08:00",
            {"value": 170, "unit": "cm", "system": UCUM, "code": "cm"},
            performer=[{"reference": "Practitioner/doc1"}],
        ),
        obs(
            "o2",
            "Patient/p1",
            "29463-7",
            "2016-01-01",
            {"value": 70.5, "unit": "kg", "system": UCUM, "code": "kg"},
        ),
        obs(
            "o3",
            "Patient/p2",
            "8302-2",
            "2014-12-31T23:30:00Z",
            {"value": 1.8, "unit": "m", "system": UCUM, "code": "m"},
            text="Body height",
        ),
        obs(
            "o4",
            "Patient/p3",
            "2339-0",
            {"start": "2024-01-01", "end": "2024-02-01"},
            {"value": 5400, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
            text="Glucose diabetes screen",
        ),
        obs("o5", "http://testserver/fhir/Patient/p4", "2339-0", "2024"),
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "participant": [{"individual": {"reference": "Practitioner/doc1"}}],
            "serviceProvider": {"reference": "Organization/org1"},
            "period": {"start": "2015-06-01T09:00:00+08:00", "end": "2015-06-01T11:00:00+08:00"},
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p2"},
            "code": {
                "text": "Diabetes mellitus type 2",
                "coding": [{"system": "http://snomed.info/sct", "code": "44054006"}],
            },
            "recorder": {"identifier": {"system": "urn:staff", "value": "S-001"}},
        },
        {
            "resourceType": "ValueSet",
            "id": "vs1",
            "status": "active",
            "url": "http://example.org/fhir/ValueSet/cn-gender",
        },
        {
            "resourceType": "ValueSet",
            "id": "vs2",
            "status": "active",
            "url": "http://example.org/fhirx/ValueSet/c",
        },
        {
            "resourceType": "RiskAssessment",
            "id": "r1",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "prediction": [{"probabilityDecimal": 0.25}],
        },
    ]
