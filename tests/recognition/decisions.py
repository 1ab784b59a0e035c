"""Builders for recognition decisions (cn-recognition-decision): a receiving doctor's Task."""

from __future__ import annotations

from typing import Any

from tests.policy.builders import BASE

OUTCOME = f"{BASE}/CodeSystem/recognition-outcome"
REASON = f"{BASE}/CodeSystem/recognition-repeat-reason"
REASONS = (
    "condition-changed",
    "rapid-change",
    "critical-procedure",
    "emergency",
    "forensic",
    "other",
)


def decision(
    result: str,
    patient: str,
    owner: str,
    doctor: str,
    outcome: str = "accepted",
    reason: str | None = None,
    text: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "status": "completed",
        "businessStatus": {"coding": [{"system": OUTCOME, "code": outcome}]},
        "intent": "order",
        "focus": {"reference": result},
        "for": {"reference": patient},
        "authoredOn": "2026-05-15T10:00:00+08:00",
        "requester": {"reference": doctor},
        "owner": {"reference": owner},
        **more,
    }
    if reason or text:
        body["statusReason"] = {}
        if reason:
            body["statusReason"]["coding"] = [{"system": REASON, "code": reason}]
        if text:
            body["statusReason"]["text"] = text
    return body
