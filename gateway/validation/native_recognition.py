"""Native fast paths for the recognition decision's invariants (cn-recognition-decision,
cnrd-*). Part of `native_cn.NATIVE_CN`; each returns what fhirpathpy returns for its expression
(an empty result holds), checked against fhirpathpy by
tests/recognition/test_decision_invariants.py.
"""

from __future__ import annotations

from typing import Any

from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.native import Native

_OUTCOME = CANONICAL_BASE + "/CodeSystem/recognition-outcome"
_REASON = CANONICAL_BASE + "/CodeSystem/recognition-repeat-reason"


def _codings(node: Any, element: str) -> list[dict[str, Any]]:
    concept = node.get(element) if isinstance(node, dict) else None
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def cnrd_1(value: Any, env: dict[str, Any]) -> bool:
    codes = [
        c["code"]
        for c in _codings(value, "businessStatus")
        if c.get("system") == _OUTCOME and "code" in c
    ]
    if not codes:
        return True  # an empty comparison holds
    reason = any(c.get("system") == _REASON for c in _codings(value, "statusReason"))
    return (codes == ["repeated"]) == reason


def cnrd_2(value: Any, env: dict[str, Any]) -> bool:
    other = any(
        c.get("system") == _REASON and c.get("code") == "other"
        for c in _codings(value, "statusReason")
    )
    reason = value.get("statusReason") if isinstance(value, dict) else None
    return not other or (isinstance(reason, dict) and "text" in reason)


def cnrd_3(value: Any, env: dict[str, Any]) -> bool:
    status = value.get("status") if isinstance(value, dict) else None
    return status is None or status in ("completed", "entered-in-error")


NATIVE_RECOGNITION: dict[tuple[str, str], Native] = {
    (
        "cnrd-1",
        f"(businessStatus.coding.where(system = '{_OUTCOME}').code = 'repeated') = "
        f"statusReason.coding.where(system = '{_REASON}').exists()",
    ): cnrd_1,
    (
        "cnrd-2",
        f"statusReason.coding.where(system = '{_REASON}' and code = 'other').exists() implies "
        "statusReason.text.exists()",
    ): cnrd_2,
    ("cnrd-3", "status = 'completed' or status = 'entered-in-error'"): cnrd_3,
}
