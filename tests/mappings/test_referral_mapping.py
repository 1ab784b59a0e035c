"""The referral mapping (mappings/referral): one spec for the 转诊单 (up) and the 回转单 (down).
Its fixture pairs run with every mapping's (test_fixtures.py); here what depends on the
direction, and what the profile refuses of a form filled in for the other direction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.mapping.plan import MappedRecord, map_record
from gateway.mapping.registry import mappings
from tests.mappings.fixtures import cases, mapped

FIXTURES = Path(__file__).resolve().parents[2] / "mappings" / "referral" / "fixtures"


def fixture(name: str, **fields: Any) -> dict[str, Any]:
    record = json.loads((FIXTURES / f"{name}.input.json").read_text("utf-8"))
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def referral(record: dict[str, Any]) -> MappedRecord:
    return map_record(mappings()["referral"], record, 1)


def resource(record: dict[str, Any]) -> dict[str, Any]:
    mapped_record = referral(record)
    assert mapped_record.ok, mapped_record.problems
    (entry,) = mapped_record.entries
    return entry.resource


def problems(record: dict[str, Any]) -> set[tuple[str | None, str]]:
    return {(p.field, p.code) for p in referral(record).problems}


def test_fixtures_cover_both_forms_csv_and_problems():
    records = [r for name, path in cases() if name == "referral" for r in mapped(name, path)]
    directions = {
        e["valueCoding"]["code"]
        for r in records
        if r.ok
        for e in r.entries[0].resource["extension"]
        if e["url"].endswith("cn-referral-direction")
    }
    assert directions == {"up", "down"}
    found = {(p.field, p.code) for r in records for p in r.problems}
    assert {("转诊单号", "GW-1700"), ("转入科室", "GW-1702")} <= found
    assert (FIXTURES / "two-forms-gb18030.input.csv").read_bytes().count("李".encode("gb18030"))


@pytest.mark.parametrize(
    "spelling", ["心血管内科", "心血管内科专业", "03.04", "０３.０４", "心内科"]
)
def test_department_by_code_or_name(spelling):
    sr = resource(fixture("up-contracted", 转入科室=spelling))
    assert sr["performerType"]["coding"][0]["code"] == "03.04"


def test_receiving_hospital_and_department_required_going_up_only():
    up = fixture("up-contracted", 转入医院=None, 转入科室=None)
    assert problems(up) == {("转入医院", "GW-1700"), ("转入科室", "GW-1700")}
    down = fixture("down-discharged", 转入机构=None, 转入科室=None, 接诊医生工号=None)
    sr = resource(down)
    assert "performer" not in sr and "performerType" not in sr  # left to the gateway's routing


def test_receiving_doctor_needs_a_staff_number():
    sr = resource(fixture("down-discharged", 接诊医生工号=None))
    assert [p["identifier"]["value"] for p in sr["performer"]] == ["12410102400001010F"]


def test_a_down_form_without_diagnosis_text_states_its_diagnosis():
    """cnr-5 wants a reason or a diagnosis: a 回转单's 诊断结果 is its diagnosis."""
    sr = resource(fixture("down-discharged", 转诊原因=None))
    assert sr["reasonCode"] == [{"text": fixture("down-discharged")["诊断结果"]}]
    up = resource(fixture("up-contracted", 转诊原因=None))
    assert up["reasonCode"] == [{"text": "原发性高血压3级（很高危）"}]


@pytest.mark.parametrize(
    ("name", "field", "invariant"),
    [("down-discharged", "现病史", "cnr-3"), ("up-contracted", "主要检查结果", "cnr-4")],
)
def test_a_field_of_the_other_form_is_refused(validator, name, field, invariant):
    sr = resource(fixture(name, **{field: "……"}))
    errors = [i for i in validator.validate(sr) if i.severity == "error"]
    assert errors and invariant in " ".join(str(i) for i in errors)


def test_the_green_channel_and_urgency():
    sr = resource(fixture("up-contracted"))
    assert sr["priority"] == "urgent"
    assert {
        "url": "https://fhir.jtys.cn/StructureDefinition/cn-green-channel",
        "valueBoolean": True,
    } in sr["extension"]
    plain = resource(fixture("up-contracted", 紧急程度=None, 绿色通道=None))
    assert plain["priority"] == "routine"
    assert not [e for e in plain["extension"] if e["url"].endswith("cn-green-channel")]
