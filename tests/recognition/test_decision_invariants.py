"""The recognition decision's invariants (cnrd-*): each has a native fast path, and it gives
what fhirpathpy gives for the FHIRPath on every combination of outcome, reason, text and
status (empty and repeated codings included)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json
from tests.recognition.decisions import OUTCOME, REASON

SD = "https://fhir.jtys.cn/StructureDefinition/cn-recognition-decision"
EXAMPLE = default_profiles_dir() / "examples" / "Task-cn-recognition-decision-li.json"


def invariants(validator: Any) -> dict[str, Any]:
    return {inv.key: inv for inv in validator.trees.get(SD).invariants}


def test_every_decision_invariant_is_native(validator: Any) -> None:
    found = invariants(validator)
    assert {"cnrd-1", "cnrd-2", "cnrd-3"} <= set(found)
    assert all(found[k].native is not None for k in ("cnrd-1", "cnrd-2", "cnrd-3"))


OUTCOMES: list[Any] = [
    None,
    [{"system": OUTCOME, "code": "accepted"}],
    [{"system": OUTCOME, "code": "repeated"}],
    [{"system": OUTCOME, "code": "repeated"}, {"system": OUTCOME, "code": "accepted"}],
    [{"system": "urn:other", "code": "repeated"}],
]
REASONS: list[Any] = [
    None,
    {"coding": [{"system": REASON, "code": "emergency"}]},
    {"coding": [{"system": REASON, "code": "other"}]},
    {"coding": [{"system": REASON, "code": "other"}], "text": "患者坚持复查"},
    {"coding": [{"system": "urn:other", "code": "other"}]},
    {"text": "只有文字"},
]
STATUSES = [None, "completed", "entered-in-error", "requested", "in-progress"]


def test_native_and_fhirpath_agree(validator: Any) -> None:
    found = invariants(validator)
    base = read_json(EXAMPLE)
    outcomes = {"cnrd-1": set(), "cnrd-2": set(), "cnrd-3": set()}
    for outcome, reason, status in itertools.product(OUTCOMES, REASONS, STATUSES):
        task = copy.deepcopy(base)
        task.pop("businessStatus")
        if outcome is not None:
            task["businessStatus"] = {"coding": outcome}
        if reason is not None:
            task["statusReason"] = reason
        task.pop("status")
        if status is not None:
            task["status"] = status
        env = {"resource": task, "rootResource": task}
        for key, inv in found.items():
            if not key.startswith("cnrd-"):
                continue
            native = inv.check(task, "Task", env)
            assert native == inv.check_fhirpath(task, "Task", env), (key, outcome, reason, status)
            outcomes[key].add(native)
    assert all(seen == {True, False} for seen in outcomes.values()), outcomes
