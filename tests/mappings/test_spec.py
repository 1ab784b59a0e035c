"""A spec is checked when it is loaded: every mistake is named with its place."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gateway.mapping.registry import DEFAULT_DIR, load_mappings
from gateway.mapping.spec import SpecError
from gateway.mapping.spec_load import load_spec
from gateway.mapping.tables import TableError, load_tables

SHARED = load_tables(yaml.safe_load((DEFAULT_DIR / "tables.yaml").read_text("utf-8")), "t")

GOOD: dict[str, Any] = {
    "name": "demo",
    "fields": {"姓名": {"de": "DE02.01.039.00", "required": True}, "性别": {"codes": "gender"}},
    "resources": {
        "patient": {
            "type": "Patient",
            "key": "name={姓名}",
            "template": {
                "name": [{"text": {"$from": "姓名"}}],
                "gender": {"$from": "性别", "$code": "gender"},
            },
        }
    },
}


def spoilt(change) -> dict[str, Any]:
    raw = copy.deepcopy(GOOD)
    change(raw)
    return raw


def test_the_shipped_specs_load():
    assert set(load_mappings()) == {
        "resident",
        "institution",
        "practitioner",
        "team",
        "contract",
        "referral",
        "lab-report",
        "exam-report",
        "chronic-followup",
        "health-exam",
    }


def test_a_good_spec_loads():
    spec = load_spec(GOOD, "demo.yaml", SHARED)
    assert spec.fields["姓名"].de == "DE02.01.039.00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["fields"].pop("性别"), "'性别' is not a declared field"),
        (
            lambda r: r["fields"].update({"电话": {}}),
            "field 电话 is declared but no template uses it",
        ),
        (lambda r: r["fields"]["姓名"].update({"de": "DE2.1"}), "WS 363 identifier"),
        (lambda r: r["fields"]["姓名"].update({"as": "colour"}), "`as` must be one of"),
        (lambda r: r["fields"]["性别"].update({"codes": "sex"}), "unknown table 'sex'"),
        (lambda r: r["fields"]["姓名"].update({"requird": True}), "unknown keys ['requird']"),
        (
            lambda r: r["resources"]["patient"]["template"].update(
                {"gender": {"$from": "性别", "$code": "x"}}
            ),
            "unknown table 'x'",
        ),
        (
            lambda r: r["resources"]["patient"]["template"].update({"id": {"$form": "姓名"}}),
            "unknown directives ['$form']",
        ),
        (
            lambda r: r["resources"]["patient"]["template"].update({"id": {"$ref": "org"}}),
            "$ref names no resource",
        ),
        (
            lambda r: r["resources"]["patient"]["template"].update(
                {"id": {"$from": "姓名", "$format": "{姓名}"}}
            ),
            "one value source per object",
        ),
        (
            lambda r: r["resources"]["patient"].update({"type": "Patiens"}),
            "not an R4 resource type",
        ),
        (lambda r: r["resources"]["patient"].update({"key": "name=姓名"}), "names no {field}"),
        (
            lambda r: r["resources"]["patient"]["template"].update({"x": {"$weak": True}}),
            "$weak only applies",
        ),
    ],
)
def test_mistakes_are_named(change, message):
    with pytest.raises(SpecError) as exc:
        load_spec(spoilt(change), "demo.yaml", SHARED)
    assert message in str(exc.value) and "demo.yaml" in str(exc.value)


def test_a_spelling_meaning_two_codes():
    with pytest.raises(TableError, match="'男' means both"):
        load_tables({"t": {"codes": {"1": ["男"], "2": ["男"]}}}, "t.yaml")


def test_a_list_field_outside_each():
    raw = spoilt(lambda r: r["fields"]["姓名"].update({"many": True}))
    with pytest.raises(SpecError, match="holds several values: use \\$each"):
        load_spec(raw, "demo.yaml", SHARED)


def test_a_directory_with_a_broken_spec(tmp_path):
    (tmp_path / "tables.yaml").write_text("{}", "utf-8")
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mapping.yaml").write_text("name: demo\nfields: [", "utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_mappings(tmp_path)
