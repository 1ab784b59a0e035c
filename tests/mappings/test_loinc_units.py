"""LOINC codes agree with the units: a result in mmol/L or μmol/L (how Chinese labs report
glucose, lipids, creatinine, urea and uric acid) carries LOINC's substance-concentration
([Moles/volume]) code, never the mass-concentration ([Mass/volume]) one, wherever WE choose the
code: the mappings' templates and tables, their fixtures, the profiles' examples. A code a sender
writes (an HL7 v2 OBX-3, a LIS's 项目代码) is kept as sent, so recognition lists both codes of
each analyte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.mapping.registry import DEFAULT_DIR
from gateway.recognition.rules import load
from gateway.validation.locations import default_profiles_dir

LOINC = "http://loinc.org"
# mass-concentration code → its substance-concentration sibling (same analyte and specimen)
MASS_TO_SUBSTANCE = {
    "1558-6": "14771-0",  # fasting glucose, serum or plasma
    "2345-7": "14749-6",  # glucose, serum or plasma
    "2339-0": "15074-8",  # glucose, blood
    "2093-3": "14647-2",  # cholesterol
    "2571-8": "14927-8",  # triglyceride
    "2085-9": "14646-4",  # HDL cholesterol
    "2089-1": "22748-8",  # LDL cholesterol
    "13457-7": "39469-2",  # LDL cholesterol, calculated
    "2160-0": "14682-9",  # creatinine
    "3094-0": "14937-7",  # urea nitrogen
    "3091-6": "22664-7",  # urea
    "3084-1": "14933-6",  # urate
}
MOLAR_UNITS = {"mmol/L", "umol/L", "μmol/L", "µmol/L"}


def _observations(node: Any) -> Iterator[dict[str, Any]]:
    """Every object with a `code` and a `valueQuantity` (an Observation or a component)."""
    if isinstance(node, dict):
        if isinstance(node.get("code"), dict) and isinstance(node.get("valueQuantity"), dict):
            yield node
        for value in node.values():
            yield from _observations(value)
    elif isinstance(node, list):
        for value in node:
            yield from _observations(value)


def _loinc_codes(concept: dict[str, Any]) -> list[str]:
    return [
        c["code"]
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == LOINC and isinstance(c.get("code"), str)
    ]


def _mismatches(document: Any) -> list[tuple[str, str]]:
    out = []
    for obs in _observations(document):
        q = obs["valueQuantity"]
        units = {u for u in (q.get("code"), q.get("unit")) if isinstance(u, str)}
        if units & MOLAR_UNITS:
            mass = [c for c in _loinc_codes(obs["code"]) if c in MASS_TO_SUBSTANCE]
            out += [(c, "/".join(sorted(units))) for c in mass]
    return out


def _our_documents() -> list[Path]:
    fixtures = sorted(DEFAULT_DIR.glob("*/fixtures/*.expected.json"))
    examples = sorted((default_profiles_dir() / "examples").glob("*.json"))
    return fixtures + examples


def _spec(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DEFAULT_DIR / name / "mapping.yaml").read_text("utf-8")))


@pytest.mark.parametrize("path", _our_documents(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_molar_result_carries_a_mass_code(path: Path) -> None:
    assert _mismatches(json.loads(path.read_text("utf-8"))) == []


@pytest.mark.parametrize("name", ["health-exam", "chronic-followup", "lab-report"])
def test_the_codes_a_mapping_assigns_are_the_units(name: str) -> None:
    """Templates (a literal code with a literal UCUM unit) and code tables (the LOINC code WE
    assign to a Chinese item name: the lab reports it in mol units)."""
    spec = _spec(name)
    for resource in spec["resources"].values():
        assert _mismatches(resource["template"]) == [], resource["type"]
    for table in (spec.get("tables") or {}).values():
        assigned = set(map(str, table.get("codes") or {}))
        assert not assigned & set(MASS_TO_SUBSTANCE), sorted(assigned & set(MASS_TO_SUBSTANCE))


def test_the_form_items_carry_the_substance_codes() -> None:
    def codes(name: str) -> set[str]:
        found: set[str] = set()
        for resource in _spec(name)["resources"].values():
            code = resource["template"].get("code")
            if isinstance(code, dict):
                found.update(_loinc_codes(code))
        return found

    assert {"14771-0", "14682-9", "14647-2", "14927-8", "22748-8", "14646-4"} <= codes(
        "health-exam"
    )
    assert "14771-0" in codes("chronic-followup")
    assert not (codes("health-exam") | codes("chronic-followup")) & set(MASS_TO_SUBSTANCE)


def test_a_recognisable_item_lists_both_codes_of_its_analyte() -> None:
    """A sender's mass code and our substance code name the same recognisable item."""
    rules = load(default_profiles_dir() / "policy").rules
    listed = 0
    for mass, substance in MASS_TO_SUBSTANCE.items():
        item = rules.item_by_code(mass)
        if item is None:
            continue
        listed += 1
        assert rules.item_by_code(substance) is item, (mass, substance)
    assert listed >= 8
    # the codes the forms and the lab-report table assign are all recognisable
    for code in ("14771-0", "14749-6", "14647-2", "14927-8", "14646-4", "22748-8", "14682-9"):
        assert rules.item_by_code(code) is not None, code
    for code in ("14937-7", "22664-7", "14933-6"):
        assert rules.item_by_code(code) is not None, code


def test_a_senders_code_is_kept_as_sent() -> None:
    """The HL7 v2 corpus's lab sends fasting glucose in mmol/L under the mass code 1558-6: the
    mapping keeps it (it does not rewrite a sender's codes), and recognition still knows it."""
    messages = Path(__file__).resolve().parents[1] / "hl7v2" / "messages"
    assert "OBX|1|NM|1558-6^" in (messages / "oru-r01-utf8.hl7").read_text("utf-8")
    expected = json.loads((messages / "oru-r01-utf8.expected.json").read_text("utf-8"))
    assert ("1558-6", "mmol/L") in _mismatches(expected)
    assert load(default_profiles_dir() / "policy").rules.item_by_code("1558-6") is not None
