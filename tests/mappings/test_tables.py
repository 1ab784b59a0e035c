"""Every code a table maps to is a code of the code system it names (profiles/CodeSystem for
ours and the national ones, the R4 definitions for FHIR's), so a mapping can never write a
code the validator rejects; and every WS 363 identifier a spec names is one of the few we
have checked against the standard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.mapping.registry import mappings

PROFILES = Path(__file__).resolve().parents[2] / "profiles" / "CodeSystem"
FHIR_CODES = {
    "http://hl7.org/fhir/administrative-gender": {"male", "female", "other", "unknown"},
    "http://hl7.org/fhir/request-status": {
        "draft",
        "active",
        "on-hold",
        "revoked",
        "completed",
        "entered-in-error",
        "unknown",
    },
    "http://hl7.org/fhir/consent-state-codes": {
        "draft",
        "proposed",
        "active",
        "rejected",
        "inactive",
        "entered-in-error",
    },
}
# Checked against WS 363 (卫生信息数据元目录) and the data sets built on it (WS 365, WS 445).
VERIFIED_DE = {
    "DE02.01.039.00": "姓名",
    "DE02.01.040.00": "性别代码",
    "DE02.01.005.01": "出生日期",
    "DE02.01.030.00": "身份证件号码",
    "DE02.01.031.00": "身份证件类别代码",
    "DE02.01.010.00": "电话号码",
    "DE01.00.009.00": "城乡居民健康档案编号",
    "DE01.00.021.00": "居民健康卡号",
    "DE08.10.013.00": "医疗卫生机构名称",
}


def code_systems() -> dict[str, set[str]]:
    out = dict(FHIR_CODES)
    for path in PROFILES.glob("CodeSystem-*.json"):
        cs = json.loads(path.read_text("utf-8"))
        codes: set[str] = set()
        stack = list(cs.get("concept", []))
        while stack:
            concept = stack.pop()
            codes.add(concept["code"])
            stack += concept.get("concept", [])
        out[cs["url"]] = codes
    return out


TABLES = sorted(
    {(t.name, id(t)): t for spec in mappings().values() for t in spec.tables.values()}.values(),
    key=lambda t: t.name,
)


@pytest.mark.parametrize("table", [t for t in TABLES if t.system], ids=lambda t: t.name)
def test_table_codes_exist(table):
    systems = code_systems()
    assert table.system in systems, f"{table.name}: no code system {table.system}"
    assert set(table.codes) <= systems[table.system]


def test_every_data_element_code_is_verified():
    for spec in mappings().values():
        for field in spec.fields.values():
            for f in (field, *field.items):
                assert f.de is None or f.de in VERIFIED_DE, f"{spec.name}.{f.name}: {f.de}"


def test_package_canonicals_exist():
    urls = set()
    for path in (PROFILES.parent / "examples").glob("PlanDefinition-*.json"):
        urls.add(json.loads(path.read_text("utf-8"))["url"])
    assert set(mappings()["contract"].tables["package"].codes) <= urls
