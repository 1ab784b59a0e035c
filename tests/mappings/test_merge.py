"""A household Group's members accumulate across records and re-sends."""

from __future__ import annotations

from gateway.mapping.merge import merge
from gateway.mapping.spec import MergeSpec

RULE = MergeSpec("member", "entity.identifier", "quantity")


def member(number: str, relationship: str, weak: bool = False, ref: bool = True):
    out = {
        "extension": [{"url": "rel", "valueCoding": {"code": relationship}}],
        "entity": {"identifier": {"system": "id", "value": number}},
    }
    if ref:
        out["entity"]["reference"] = f"Patient?identifier=id|{number}"
    if weak:
        out["$weak"] = True
    return out


def group(*members):
    return {"resourceType": "Group", "name": "家庭户 1", "member": list(members)}


def test_members_of_separate_records_all_stay():
    first = merge(None, group(member("A", "02")), RULE)
    second = merge(first, group(member("B", "52")), RULE)
    assert [m["entity"]["identifier"]["value"] for m in second["member"]] == ["A", "B"]
    assert second["quantity"] == 2


def test_a_resent_record_replaces_its_member_without_duplicating():
    stored = merge(None, group(member("A", "02"), member("B", "52")), RULE)
    again = merge(stored, group(member("B", "51")), RULE)
    assert [m["extension"][0]["valueCoding"]["code"] for m in again["member"]] == ["02", "51"]
    assert again["quantity"] == 2


def test_a_weak_head_fills_a_gap_only():
    named = merge(None, group(member("B", "52"), member("A", "02", weak=True, ref=False)), RULE)
    assert "$weak" not in named["member"][1] and named["quantity"] == 2
    head = merge(named, group(member("A", "02")), RULE)
    assert head["member"][1]["entity"]["reference"] == "Patient?identifier=id|A"
    later = merge(head, group(member("C", "20"), member("A", "02", weak=True, ref=False)), RULE)
    assert later["member"][1]["entity"]["reference"] == "Patient?identifier=id|A"
    assert later["quantity"] == 3
