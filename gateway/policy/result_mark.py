"""The mutual-recognition mark (extension cn-result-recognition) on a DiagnosticReport or
Observation: the gateway decides it on every write. A recognisable item whose performing lab
held a passed qualification covering the result's day carries it, with the scope `alliance`
when the lab belongs to a medical alliance and `region` otherwise; any other result carries
none (a mark the client set is removed), so a lab whose qualification lapsed sends unmarked
results from then on.

The receiving doctor's decision on a result (a Task of profile cn-recognition-decision, marked by
its recognition-outcome business status) is checked here too: it is about a stored result of
the patient it names, and with authentication on it is recorded by the institution it names as
`owner` (POL-2410, 2411, 2412).
"""

from __future__ import annotations

from typing import Any

from gateway.policy.fhir_values import sd, violation
from gateway.policy.lookup import Lookup
from gateway.recognition.decide import item_of, mark
from gateway.recognition.institutions import performing_lab

MARK = sd("cn-result-recognition")
SCOPE_SYSTEM = "https://fhir.jtys.cn/CodeSystem/result-recognition"
_DISPLAY = {"alliance": "医联体内互认", "region": "区域互认"}


async def set_mark(lookup: Lookup, result: dict[str, Any]) -> None:
    recognition = lookup.packs.recognition
    if recognition is None:
        return
    scope = None
    if item_of(result, recognition.rules) is not None:  # read the lab only when it matters
        lab = await performing_lab(result, lookup.resolve)
        scope = mark(result, lab, recognition.rules)
    kept = [e for e in result.get("extension") or [] if e.get("url") != MARK]
    if scope is not None:
        coding = {"system": SCOPE_SYSTEM, "code": scope, "display": _DISPLAY[scope]}
        kept.append({"url": MARK, "valueCoding": coding})
    if kept:
        result["extension"] = kept
    else:
        result.pop("extension", None)


# --- the receiving doctor's decision (cn-recognition-decision) ---------------------------

OUTCOME_SYSTEM = "https://fhir.jtys.cn/CodeSystem/recognition-outcome"
_RESULT_TYPES = ("DiagnosticReport", "Observation", "ImagingStudy")


def is_recognition_decision(resource: dict[str, Any]) -> bool:
    """A Task whose business status is a recognition outcome (accepted | repeated)."""
    return resource.get("resourceType") == "Task" and any(
        isinstance(c, dict) and c.get("system") == OUTCOME_SYSTEM
        for c in (resource.get("businessStatus") or {}).get("coding") or []
    )


async def check_decision(
    lookup: Lookup, task: dict[str, Any], organization: str | None, role: str | None
) -> None:
    """Before a decision is stored: it is about a result the gateway holds, of the patient it
    names; with authentication on, an institution records only its own decisions (`owner`)."""
    focus = await lookup.resolve(task.get("focus"))
    if focus is None or focus.get("resourceType") not in _RESULT_TYPES:
        raise violation(
            "A recognition decision is about a stored result (DiagnosticReport, Observation or "
            "ImagingStudy); Task.focus names none",
            "Task.focus",
            "POL-2410",
        )
    subject = await lookup.reference_of(focus.get("subject") or focus.get("patient"))
    patient = await lookup.reference_of(task.get("for"))
    if subject is None or subject != patient:
        raise violation(
            f"The result {focus['resourceType']}/{focus.get('id')} is about "
            f"{subject or 'no patient'}, not {patient or 'the patient Task.for names'}",
            "Task.for",
            "POL-2411",
        )
    if organization is None or role == "admin":
        return  # the gateway itself, authentication off, or an administrator
    owner = await lookup.reference_of(task.get("owner"))
    if owner != organization:
        raise violation(
            f"A recognition decision is recorded by the institution that made it; Task.owner "
            f"names {owner or 'none'}, this client acts for {organization}",
            "Task.owner",
            "POL-2412",
            status=403,
            code="forbidden",
        )
