"""The mutual-recognition mark (extension cn-result-recognition) on a DiagnosticReport or
Observation: the gateway decides it on every write. A recognisable item whose performing lab
held a passed qualification covering the result's day carries it, with the scope `alliance`
when the lab belongs to a medical alliance and `region` otherwise; any other result carries
none (a mark the client set is removed), so a lab whose qualification lapsed sends unmarked
results from then on.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.fhir_values import sd
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
