"""The reverse of the contract mapping: CarePlan + Consent, as stored, → the native record
(`<case>.native.json`), and that record maps to the same resources again."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.mapping.registry import mappings
from gateway.mapping.reverse import native_record, related_queries
from tests.mappings.fixtures import case_id, cases, check_or_update, mapped, rendering, sibling

CONTRACT_CASES = [c for c in cases() if c[0] == "contract"]


def stored(resource: dict[str, Any], n: int) -> dict[str, Any]:
    """As the gateway stores it: an id, meta, and literal references where the transaction
    resolved searches and placeholders (the reverse must not need them)."""
    out = copy.deepcopy(resource)
    out["id"] = f"x{n}"
    out["meta"] = {**out.get("meta", {}), "versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"}

    def literal(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ("?" in ref or ref.startswith("urn:")):
                node["reference"] = f"{ref.split('?')[0].split(':')[-1].title()}/{n}"
            for v in node.values():
                literal(v)
        elif isinstance(node, list):
            for v in node:
                literal(v)

    literal(out)
    return out


def read_back(record) -> dict[str, Any]:
    resources = {p.spec.name: stored(p.resource, i) for i, p in enumerate(record.entries)}
    return native_record(mappings()["contract"], resources)


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=[case_id(c) for c in CONTRACT_CASES])
def test_contract_reads_back_to_native(case):
    records = [r for r in mapped(*case) if r.ok]
    actual = [read_back(r) for r in records]
    assert actual == check_or_update(sibling(case[1], "native"), actual)


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=[case_id(c) for c in CONTRACT_CASES])
def test_native_record_maps_to_the_same_resources(case):
    spec = mappings()["contract"]
    from gateway.mapping.plan import map_record
    from tests.mappings.fixtures import fixture_name

    for record in mapped(*case):
        if not record.ok:
            continue
        again = map_record(spec, read_back(record), record.number, fixture_name)
        assert again.problems == []
        assert rendering(again) == rendering(record)


def test_every_contract_field_reads_back():
    """Across the fixtures every field of the contract mapping is read back at least once:
    nothing the mapping writes is lost on the way back."""
    seen: set[str] = set()
    for case in CONTRACT_CASES:
        for record in mapped(*case):
            if record.ok:
                seen |= set(read_back(record))
    # a representative's document type reads back only where it differs from the resident's
    assert set(mappings()["contract"].fields) - seen == {"家庭代表证件类型"}


def test_the_consent_is_found_by_the_contract_number():
    spec = mappings()["contract"]
    queries = related_queries(spec, {"签约编号": "QY 1&2"}, "contract")
    assert queries == {"consent": "Consent?identifier=https://fhir.jtys.cn/sid/contract|QY%201%262"}
