"""Resource → index rows, per parameter type. Every test runs in both modes (fast path and
fhirpathpy-only), so the edge cases double as parity checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.store.rows import IndexRows

UCUM = "http://unitsofmeasure.org"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.fixture(params=["fast", "fhirpath"])
def ex(
    request: pytest.FixtureRequest, extractor: IndexExtractor, fhirpath_extractor: IndexExtractor
) -> IndexExtractor:
    return extractor if request.param == "fast" else fhirpath_extractor


def of(rows: IndexRows, table: str, param: str) -> set:
    return {r for r in getattr(rows, table) if r.param == param}


# -- token -----------------------------------------------------------------------------------


def test_token_identifier(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "id": "p",
            "identifier": [
                {
                    "system": "urn:oid:2.16.156.10011.1.3",
                    "value": "110101199003077777",
                    "type": {"text": "居民身份证"},
                },
                {"value": "no-system"},
                {"type": {"text": "nothing else"}},
            ],
        }
    )
    got = {(r.system, r.code, r.text) for r in of(rows, "token", "identifier")}
    assert got == {
        ("urn:oid:2.16.156.10011.1.3", "110101199003077777", "居民身份证"),
        (None, "no-system", None),
    }


def test_token_codeable_concept(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic BP"},
                    {"system": "http://snomed.info/sct", "code": "271649006"},
                ],
                "text": "Blood Pressure – Systolic",
            },
        }
    )
    got = {(r.system, r.code, r.text) for r in of(rows, "token", "code")}
    assert got == {
        ("http://loinc.org", "8480-6", "systolic bp"),
        ("http://snomed.info/sct", "271649006", None),
        (None, None, "blood pressure – systolic"),
    }
    # A code primitive: code only, no system.
    assert {(r.system, r.code) for r in of(rows, "token", "status")} == {(None, "final")}


def test_token_boolean_and_code(ex: IndexExtractor) -> None:
    rows = ex.extract({"resourceType": "Patient", "active": False, "gender": "female"})
    assert {(r.system, r.code) for r in of(rows, "token", "active")} == {(None, "false")}
    assert {(r.system, r.code) for r in of(rows, "token", "gender")} == {(None, "female")}
    rows = ex.extract({"resourceType": "Patient", "active": True})
    assert {r.code for r in of(rows, "token", "active")} == {"true"}


def test_token_contact_point_and_where_filter(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "telecom": [
                {"system": "phone", "value": "+86 20 1234 5678", "use": "mobile"},
                {"system": "email", "value": "zhang@example.cn"},
            ],
        }
    )
    assert {(r.system, r.code) for r in of(rows, "token", "phone")} == {(None, "+86 20 1234 5678")}
    assert {r.code for r in of(rows, "token", "email")} == {"zhang@example.cn"}
    assert {r.code for r in of(rows, "token", "telecom")} == {
        "+86 20 1234 5678",
        "zhang@example.cn",
    }


def test_token_deceased(ex: IndexExtractor) -> None:
    def deceased(p: dict) -> set:
        rows = ex.extract({"resourceType": "Patient", **p})
        return {r.code for r in of(rows, "token", "deceased")}

    assert deceased({}) == {"false"}
    assert deceased({"deceasedBoolean": False}) == {"false"}
    assert deceased({"deceasedBoolean": True}) == {"true"}
    assert deceased({"deceasedDateTime": "2020-02-02"}) == {"true"}


def test_meta_tag_security_profile_source_lastupdated(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "id": "abc",
            "meta": {
                "lastUpdated": "2024-05-01T12:00:00.123+08:00",
                "tag": [{"system": "http://example.org/tags", "code": "vip", "display": "VIP"}],
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    }
                ],
                "profile": ["http://example.org/StructureDefinition/cn-patient|1.0"],
                "source": "http://hospital.example.cn/his#42",
            },
        }
    )
    assert {(r.system, r.code, r.text) for r in of(rows, "token", "_tag")} == {
        ("http://example.org/tags", "vip", "vip")
    }
    assert {r.code for r in of(rows, "token", "_security")} == {"R"}
    assert {r.uri for r in of(rows, "uri", "_profile")} == {
        "http://example.org/StructureDefinition/cn-patient|1.0"
    }
    assert {r.uri for r in of(rows, "uri", "_source")} == {"http://hospital.example.cn/his#42"}
    (lu,) = of(rows, "date", "_lastUpdated")
    assert lu.low == utc(2024, 5, 1, 4, 0, 0, 123000)
    assert lu.high == utc(2024, 5, 1, 4, 0, 0, 123999)
    # _id is not indexed: the store has the id.
    assert not any(r.param == "_id" for t in IndexRows.TABLES for r in getattr(rows, t))


# -- string ----------------------------------------------------------------------------------


def test_string_chinese_name_parts(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "name": [
                {"text": "张三", "family": "张", "given": ["三"]},
                {"family": "Müller", "given": ["José", "Ana"], "prefix": ["Dr."]},
            ],
        }
    )
    name = of(rows, "string", "name")
    assert {(r.norm, r.exact) for r in name} == {
        ("张三", "张三"),
        ("张", "张"),
        ("三", "三"),
        ("muller", "Müller"),
        ("jose", "José"),
        ("ana", "Ana"),
        ("dr.", "Dr."),
    }
    # name=张 (starts-with on norm) matches both the family and the text.
    assert {r.exact for r in name if r.norm.startswith("张")} == {"张", "张三"}
    assert {r.exact for r in of(rows, "string", "family")} == {"张", "Müller"}
    assert {r.exact for r in of(rows, "string", "given")} == {"三", "José", "Ana"}


def test_string_address(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "address": [
                {
                    "line": ["天河路 385 号", "  Tower  B "],
                    "city": "广州市",
                    "district": "天河区",
                    "state": "广东省",
                    "postalCode": "510620",
                    "country": "CN",
                }
            ],
        }
    )
    assert {r.norm for r in of(rows, "string", "address")} == {
        "天河路 385 号",
        "tower b",
        "广州市",
        "天河区",
        "广东省",
        "510620",
        "cn",
    }
    assert {(r.norm, r.exact) for r in of(rows, "string", "address-city")} == {("广州市", "广州市")}
    assert {r.norm for r in of(rows, "string", "address-postalcode")} == {"510620"}


# -- date ------------------------------------------------------------------------------------


def test_date_birthdate_year_precision(ex: IndexExtractor) -> None:
    rows = ex.extract({"resourceType": "Patient", "birthDate": "1980"})
    (r,) = of(rows, "date", "birthdate")
    assert (r.low, r.high) == (utc(1980, 1, 1), utc(1980, 12, 31, 23, 59, 59, 999999))


def test_date_choice_type_and_timezone(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2024-03-05T08:00:00+08:00",
        }
    )
    (r,) = of(rows, "date", "date")
    assert (r.low, r.high) == (utc(2024, 3, 5), utc(2024, 3, 5, 0, 0, 0, 999999))
    rows = ex.extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectivePeriod": {"start": "2024-03", "end": "2024-04-02"},
        }
    )
    (r,) = of(rows, "date", "date")
    assert (r.low, r.high) == (utc(2024, 3, 1), utc(2024, 4, 2, 23, 59, 59, 999999))


def test_date_period_open_ends(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "period": {"start": "2024-01-01T10:00:00Z"},
        }
    )
    (r,) = of(rows, "date", "date")
    assert r.low == utc(2024, 1, 1, 10) and r.high is None
    rows = ex.extract(
        {"resourceType": "Encounter", "status": "finished", "period": {"end": "2024-01-02"}}
    )
    (r,) = of(rows, "date", "date")
    assert r.low is None and r.high == utc(2024, 1, 2, 23, 59, 59, 999999)
    rows = ex.extract({"resourceType": "Encounter", "status": "finished", "period": {}})
    assert of(rows, "date", "date") == set()


def test_date_timing_outer_limits(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/1"},
            "activity": [
                {
                    "detail": {
                        "status": "scheduled",
                        "scheduledTiming": {"event": ["2024-02-01", "2024-01-15T09:00:00Z"]},
                    }
                }
            ],
        }
    )
    (r,) = of(rows, "date", "activity-date")
    assert (r.low, r.high) == (utc(2024, 1, 15, 9), utc(2024, 2, 1, 23, 59, 59, 999999))


def test_invalid_date_is_skipped(ex: IndexExtractor) -> None:
    rows = ex.extract({"resourceType": "Patient", "birthDate": "someday"})
    assert of(rows, "date", "birthdate") == set()


# -- number / quantity -----------------------------------------------------------------------


def test_number_precision_range(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/1"},
            "prediction": [
                {"probabilityDecimal": 0.25},
                {"probabilityRange": {"low": {"value": 1}}},
            ],
        }
    )
    (r,) = of(rows, "number", "probability")
    assert r.value == 0.25
    assert r.low == pytest.approx(0.245) and r.high == pytest.approx(0.255)


def test_number_integer(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/1"},
            "factorOverride": 100,
        }
    )
    (r,) = of(rows, "number", "factor-override")
    assert (r.value, r.low, r.high) == (100, 99.5, 100.5)


def test_quantity_canonical_equal(ex: IndexExtractor) -> None:
    def q(value: float, code: str) -> object:
        rows = ex.extract(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": value, "unit": code, "system": UCUM, "code": code},
            }
        )
        (r,) = of(rows, "quantity", "value-quantity")
        return r

    g, mg = q(1, "g"), q(1000, "mg")
    assert (g.value, g.code, g.system, g.unit) == (1, "g", UCUM, "g")
    assert (mg.value, mg.code) == (1000, "mg")
    assert (g.canon_value, g.canon_code) == (mg.canon_value, mg.canon_code) == (1.0, "g")
    assert (g.low, g.high) == (0.5, 1.5)
    unknown = q(3, "{beats}")
    assert unknown.canon_value is None and unknown.canon_code is None


def test_quantity_components_money_range(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "bp"},
            "component": [
                {
                    "code": {"text": "sys"},
                    "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"},
                },
                {
                    "code": {"text": "dia"},
                    "valueQuantity": {"value": 80.5, "system": UCUM, "code": "mm[Hg]"},
                },
            ],
        }
    )
    assert {r.value for r in of(rows, "quantity", "component-value-quantity")} == {120, 80.5}
    assert of(rows, "quantity", "value-quantity") == set()
    assert {r.value for r in of(rows, "quantity", "combo-value-quantity")} == {120, 80.5}

    rows = ex.extract(
        {
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/1"},
            "priceOverride": {"value": 35.5, "currency": "CNY"},
        }
    )
    (m,) = of(rows, "quantity", "price-override")
    assert (m.value, m.system, m.code) == (35.5, "urn:iso:std:iso:4217", "CNY")

    rows = ex.extract(
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/1"},
            "onsetRange": {"low": {"value": 40, "system": UCUM, "code": "a"}},
        }
    )
    (rg,) = of(rows, "quantity", "onset-age")
    assert (rg.value, rg.low, rg.high, rg.code) == (40, 40, float("inf"), "a")


# -- reference / uri -------------------------------------------------------------------------


def _obs(**kw: object) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **kw}


def test_reference_forms(ex: IndexExtractor) -> None:
    rows = ex.extract(
        _obs(
            subject={"reference": "Patient/123/_history/2"},
            performer=[
                {"reference": "http://other.example.org/fhir/Practitioner/dr-1"},
                {"reference": "urn:uuid:0b0b0b0b-1111-2222-3333-444444444444"},
                {"reference": "#contained-org"},
                {"identifier": {"system": "http://example.org/license", "value": "L-9"}},
                {"display": "Only a name"},
            ],
            specimen={"reference": "sp1"},
        )
    )
    subj = of(rows, "reference", "subject")
    assert {(r.target_type, r.target_id, r.url) for r in subj} == {("Patient", "123", None)}
    perf = {
        (r.target_type, r.target_id, r.url, r.ident_system, r.ident_value)
        for r in of(rows, "reference", "performer")
    }
    assert perf == {
        ("Practitioner", "dr-1", "http://other.example.org/fhir/Practitioner/dr-1", None, None),
        (None, None, "urn:uuid:0b0b0b0b-1111-2222-3333-444444444444", None, None),
        (None, None, None, "http://example.org/license", "L-9"),
    }
    # A bare id on a single-target parameter gets the target type.
    assert {(r.target_type, r.target_id) for r in of(rows, "reference", "specimen")} == {
        ("Specimen", "sp1")
    }


def test_reference_resolve_is_filters_by_type(ex: IndexExtractor) -> None:
    rows = ex.extract(_obs(subject={"reference": "Patient/p1"}))
    assert {r.target_id for r in of(rows, "reference", "patient")} == {"p1"}
    rows = ex.extract(_obs(subject={"reference": "Group/g1"}))
    assert of(rows, "reference", "patient") == set()
    assert {r.target_type for r in of(rows, "reference", "subject")} == {"Group"}
    # Absolute references resolve by the type in the URL; Reference.type as a fallback.
    rows = ex.extract(_obs(subject={"reference": "https://x.example/fhir/Patient/p2"}))
    assert {r.target_id for r in of(rows, "reference", "patient")} == {"p2"}
    rows = ex.extract(
        _obs(subject={"type": "Patient", "identifier": {"system": "urn:id", "value": "7"}})
    )
    assert {(r.ident_system, r.ident_value) for r in of(rows, "reference", "patient")} == {
        ("urn:id", "7")
    }


def test_reference_canonical_with_version(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/1"},
            "instantiatesCanonical": [
                "http://example.org/fhir/PlanDefinition/family-doctor|2.1",
                "http://example.org/protocols/plain",
            ],
        }
    )
    got = {
        (r.url, r.version, r.target_type, r.target_id)
        for r in of(rows, "reference", "instantiates-canonical")
    }
    assert got == {
        (
            "http://example.org/fhir/PlanDefinition/family-doctor",
            "2.1",
            "PlanDefinition",
            "family-doctor",
        ),
        ("http://example.org/protocols/plain", None, None, None),
    }


def test_uri(ex: IndexExtractor) -> None:
    rows = ex.extract(
        {
            "resourceType": "ValueSet",
            "status": "active",
            "url": "http://example.org/ValueSet/gb-t-2261-1",
        }
    )
    assert {r.uri for r in of(rows, "uri", "url")} == {"http://example.org/ValueSet/gb-t-2261-1"}


def test_unknown_type_and_garbage_do_not_crash(ex: IndexExtractor) -> None:
    # Not an R4 type: nothing is known about its elements, so nothing is indexed.
    assert ex.extract({"resourceType": "NotAType", "meta": {"tag": [{"code": "t"}]}}) == (
        IndexRows()
    )
    rows = ex.extract(
        {
            "resourceType": "Patient",
            "name": "not a list of names",
            "birthDate": 1980,
            "identifier": [None, 3, {"value": 4}],
        }
    )
    assert of(rows, "string", "name") == set()
    assert of(rows, "date", "birthdate") == set()
    assert of(rows, "token", "identifier") == set()
    assert ex.extract({}) == IndexRows()


def test_registry_views_are_cached(registry: SearchParamRegistry) -> None:
    assert registry.for_type("Patient") is registry.for_type("Patient")
