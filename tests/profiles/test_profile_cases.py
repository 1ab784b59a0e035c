"""Invalid inputs (tests/profiles/cases/*.json) each produce their precise issue.

A case is an example from profiles/examples (or an inline `resource`) with a JSON `patch`;
`expect` lists the errors as message id + FHIRPath expression (+ invariant key); with
`exact` the errors must be exactly those. Optional: `profiles`, `strict`, `core_only`,
`warnings` (expected warnings).
"""

from __future__ import annotations

from pathlib import Path

import jsonpatch
import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json

_CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


def case_resource(case: dict) -> dict:
    base = case.get("resource") or read_json(default_profiles_dir() / "examples" / case["example"])
    return jsonpatch.apply_patch(base, case.get("patch", []))


def _matches(issue, want: dict) -> bool:
    return (
        issue.message_id == want["id"]
        and issue.expression == want["expression"]
        and ("key" not in want or f"Constraint {want['key']} failed" in issue.text_en)
    )


@pytest.mark.parametrize("path", _CASES, ids=lambda p: p.stem)
def test_invalid_case(validator, core_validator, path):
    case = read_json(path)
    chosen = core_validator if case.get("core_only") else validator
    issues = chosen.validate(
        case_resource(case), case.get("profiles"), strict=case.get("strict", False)
    )
    errors = [i for i in issues if i.is_error]
    for want in case["expect"]:
        assert any(_matches(i, want) for i in errors), (
            want,
            [(i.expression, i.text_en) for i in errors],
        )
    if case.get("exact", True):
        unexpected = [i for i in errors if not any(_matches(i, w) for w in case["expect"])]
        assert not unexpected, [(i.message_id, i.expression, i.text_en) for i in unexpected]
    for mid, expression in case.get("warnings", []):
        assert any(
            i.severity == "warning" and (i.message_id, i.expression) == (mid, expression)
            for i in issues
        )
    for i in errors:
        assert i.text_zh and i.text_en and i.expression
