"""The contract invariants (cnc-*) on edge cases the examples do not reach: the native fast path
gives what fhirpathpy gives for the FHIRPath, and the answer is the one the rule states."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json

CONTRACT = "https://fhir.jtys.cn/StructureDefinition/cn-family-doctor-contract"
CONFIRMATION = "https://fhir.jtys.cn/StructureDefinition/cn-yearly-confirmation"
THREE_YEARS = read_json(
    default_profiles_dir() / "examples" / "CarePlan-cn-contract-zhou-wei-2024.json"
)


def confirmed(period: dict[str, str] | None, *years: Any) -> dict[str, Any]:
    res = copy.deepcopy(THREE_YEARS)
    res["extension"] = [e for e in res["extension"] if e["url"] != CONFIRMATION] + [
        {"url": CONFIRMATION, "extension": [{"url": "year", "valuePositiveInt": y}]} for y in years
    ]
    if period is None:
        res.pop("period")
    else:
        res["period"] = period
    return res


# (period, confirmed years, cnc-8 holds, cnc-9 holds)
CASES = [
    ({"start": "2024-01-01", "end": "2026-12-31"}, (2, 3), True, True),
    ({"start": "2024-01-01", "end": "2026-12-31"}, (), True, True),
    ({"start": "2024-01-01", "end": "2026-12-31"}, (3, 2), True, True),
    ({"start": "2024-01-01", "end": "2026-12-31"}, (2, 4), True, False),
    ({"start": "2024-01-01", "end": "2024-12-31"}, (2,), True, False),
    ({"start": "2024-07-01", "end": "2027-06-30"}, (3,), True, True),
    ({"start": "2024-07-01", "end": "2026-06-30"}, (3,), True, False),
    ({"start": "2024-07-01", "end": "2025-07-01"}, (2,), True, True),  # year 2's first day
    ({"start": "2024-07-01T08:00:00+08:00", "end": "2026-06-30T18:00:00+08:00"}, (2,), True, True),
    ({"start": "2024-07-01T08:00:00+08:00", "end": "2026-06-30T18:00:00+08:00"}, (3,), True, False),
    ({"start": "2024", "end": "2026"}, (3,), True, True),
    ({"start": "2024-03", "end": "2026-02"}, (3,), True, False),
    ({"start": "2024-01-01"}, (5,), True, True),  # no end: cnc-9 has nothing to measure
    (None, (2,), True, True),
    ({"start": "2024-01-01", "end": "2026-12-31"}, (1, 2), False, True),
    ({"start": "2024-01-01", "end": "2026-12-31"}, (2, 2), False, True),
]


@pytest.fixture(scope="module")
def invariants(validator) -> dict[str, Any]:
    root = validator.trees.get(CONTRACT)
    return {inv.key: inv for inv in root.invariants if inv.key.startswith("cnc-")}


def test_every_contract_invariant_is_native(invariants):
    assert {f"cnc-{n}" for n in range(1, 10)} <= set(invariants)
    assert all(inv.native is not None for inv in invariants.values())


@pytest.mark.parametrize(("period", "years", "distinct", "within"), CASES, ids=str)
def test_yearly_confirmations(invariants, period, years, distinct, within):
    res = confirmed(period, *years)
    env = {"resource": res, "rootResource": res}
    for key, want in (("cnc-8", distinct), ("cnc-9", within)):
        inv = invariants[key]
        assert inv.check_fhirpath(res, "CarePlan", env) == want, key
        assert inv.check(res, "CarePlan", env) == want, key


@pytest.mark.parametrize(
    "patch",
    [
        {"status": "revoked"},
        {"status": "on-hold"},
        {"status": None},
        {"signing-unit": "household"},
        {"signing-unit": "functional-community"},
        {"signing-unit": None},
        {"household-contract": True},
        {"functional-community": True},
    ],
    ids=str,
)
def test_the_other_contract_invariants_agree(invariants, patch):
    for example in sorted((default_profiles_dir() / "examples").glob("CarePlan-*.json")):
        res = _patched(read_json(example), patch)
        env = {"resource": res, "rootResource": res}
        for key, inv in invariants.items():
            assert inv.check(res, "CarePlan", env) == inv.check_fhirpath(res, "CarePlan", env), (
                key,
                example.name,
            )


def _patched(res: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    base = "https://fhir.jtys.cn/"
    for what, value in patch.items():
        if what == "status":
            res["status"] = value
            if value is None:
                del res["status"]
        elif what == "signing-unit":
            unit = base + "StructureDefinition/cn-signing-unit"
            res["extension"] = [e for e in res["extension"] if e["url"] != unit]
            if value:
                code = {"system": base + "CodeSystem/signing-unit", "code": value}
                res["extension"].append({"url": unit, "valueCoding": code})
        elif what == "household-contract":
            res["identifier"].append({"system": base + "sid/household-contract", "value": "1"})
        elif what == "functional-community":
            url = base + "StructureDefinition/cn-functional-community"
            res["extension"].append({"url": url, "valueReference": {"display": "x"}})
    return res
