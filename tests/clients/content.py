"""Ordinary FHIR R4 content, as hospitals and EHR vendors send it.

Standard (US-style) Patients with a medical-record number, Chinese Patients with a health-record
number and a name whose `text` carries the characters, and LOINC vital-sign Observations.
"""

from __future__ import annotations

import uuid

# The MRN system of the SMART sample data (what an EHR sandbox sends).
MRN = "http://hospital.smarthealthit.org"
# 健康档案编号 (17 digits), a national identifier system.
HEALTH_RECORD = "urn:oid:2.16.156.10011.1.2"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}
HEART_RATE = f"{LOINC}|8867-4"


def unique_digits(n: int = 17) -> str:
    return str(uuid.uuid4().int)[:n]


def bare_patient() -> dict:
    """The smallest ordinary Patient a client sends: no identifier, no narrative, no text."""
    return {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["John"]}],
        "gender": "male",
        "birthDate": "1970-01-01",
    }


def standard_patient(
    family: str = "Smith",
    given: str = "John",
    birth_date: str = "1970-01-01",
    gender: str = "male",
    mrn: str | None = None,
) -> dict:
    """A Patient as a US EHR sends it: MRN identifier, official name, phone, address."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical Record Number",
                        }
                    ],
                    "text": "Medical Record Number",
                },
                "system": MRN,
                "value": mrn or unique_digits(9),
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": "555-555-1234", "use": "home"}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [
            {
                "use": "home",
                "line": ["123 Main St"],
                "city": "Boston",
                "state": "MA",
                "postalCode": "02115",
                "country": "US",
            }
        ],
    }


def chinese_patient(
    family: str = "张",
    given: str = "三",
    birth_date: str = "1980-05-12",
    gender: str = "male",
    record: str | None = None,
) -> dict:
    """A Patient as a Chinese hospital information system sends it: the health-record number,
    the name in characters (`text`, `family`, `given`), a mobile phone and an address."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HEALTH_RECORD, "value": record or unique_digits(17)}],
        "active": True,
        "name": [{"use": "official", "text": family + given, "family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": "13800138000", "use": "mobile"}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"text": "北京市东城区东华门街道1号", "city": "北京市", "country": "CN"}],
    }


def heart_rate(patient_id: str, value: int = 72, when: str = "2024-03-01T08:30:00+08:00") -> dict:
    """A vital-signs heart-rate Observation (LOINC 8867-4, UCUM /min)."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [VITAL_SIGNS],
        "code": {
            "coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "beats/minute", "system": UCUM, "code": "/min"},
    }


def transaction(resources: list[dict]) -> dict:
    """A transaction Bundle creating `resources` (each gets a urn:uuid fullUrl)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for resource in resources
        ],
    }


def fields(resource: dict) -> dict:
    """The resource's elements without resourceType (fhirpy's `client.resource(type, **fields)`)."""
    return {k: v for k, v in resource.items() if k != "resourceType"}
