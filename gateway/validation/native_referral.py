"""Native fast paths for the referral profiles' invariants: the referral (cnr-*), its Task
(cnrt-*), the Appointment (cnap-*), the long prescription (cnlp-*) and the referral Bundle
(cnrb-*).

Part of `native_cn.NATIVE_CN`, kept apart so the referral rules read as one place. Each function
returns what fhirpathpy returns for the expression it is keyed by (an empty result holds;
`all()` over an empty criterion is false), and tests check both agree on every example and
invalid case.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.native import Native
from gateway.validation.native_json import as_list as _list
from gateway.validation.native_json import extensions as _exts
from gateway.validation.native_json import value_of as _value

_SD = CANONICAL_BASE + "/StructureDefinition/"
_DIRECTION = _SD + "cn-referral-direction"
_PRIORITY = _SD + "cn-referral-priority"
_FORM = _SD + "cn-referral-form"
_REFERRAL = _SD + "cn-referral"
_CATEGORY = CANONICAL_BASE + "/CodeSystem/family-doctor-category"
_STATUS = CANONICAL_BASE + "/CodeSystem/referral-status"
_UP_FIELDS = ("impression", "presentIllness", "pastHistory")
_DOWN_FIELDS = ("diagnosis", "mainResults", "advice")
# Task.status → the business statuses that fit it (referral-status), in the order cnrt-1 names
# them; entered-in-error keeps whichever it had. The table of profiles/policy/national.yaml
# referrals.task.business_status.
BUSINESS_STATUS: dict[str, tuple[str, ...]] = {
    "requested": ("submitted",),
    "received": ("received",),
    "accepted": ("accepted", "appointment-booked", "arrived", "no-show"),
    "rejected": ("declined",),
    "in-progress": ("arrived", "admitted", "discharged"),
    "completed": ("completed", "discharged", "referred-down"),
    "cancelled": ("cancelled",),
    "failed": ("failed", "no-show"),
}
_BUNDLED = frozenset(
    {
        "ServiceRequest",
        "Task",
        "Observation",
        "DiagnosticReport",
        "DocumentReference",
        "Condition",
        "Composition",
    }
)
_PATIENT_REF = r"^(.*/)?Patient[/?]"
_SUPPLY_UNITS = ("d", "wk", "mo")


def _direction_is(res: dict[str, Any], code: str) -> bool:
    """`empty() or extension.where(url = direction).value.code = code`, given the left side is
    false: no direction (empty) holds, one equal code holds, anything else fails."""
    values = (_value(e) for e in _exts(res, _DIRECTION))
    codes = [v["code"] for v in values if isinstance(v, dict) and "code" in v]
    return not codes or codes == [code]


def _form_fields(res: dict[str, Any], names: tuple[str, ...]) -> bool:
    return any(_exts(form, name) for form in _exts(res, _FORM) for name in names)


def cnr_2(res: dict, env: dict) -> bool:
    return not _exts(res, _PRIORITY) or _direction_is(res, "up")


def cnr_3(res: dict, env: dict) -> bool:
    return not _form_fields(res, _UP_FIELDS) or _direction_is(res, "up")


def cnr_4(res: dict, env: dict) -> bool:
    return not _form_fields(res, _DOWN_FIELDS) or _direction_is(res, "down")


def cnr_5(res: dict, env: dict) -> bool:
    return bool(_list(res.get("reasonCode")) or _list(res.get("reasonReference")))


def cnrt_1(res: dict, env: dict) -> bool:
    concept = res.get("businessStatus")
    codings = _list(concept.get("coding")) if isinstance(concept, dict) else []
    codes = [
        c["code"]
        for c in codings
        if isinstance(c, dict) and c.get("system") == _STATUS and c.get("code") is not None
    ]
    if not codes:
        return True
    status = env["resource"].get("status")
    if status == "entered-in-error":
        return True
    return all(code in BUSINESS_STATUS.get(status, ()) for code in codes)


def cnap_1(res: dict, env: dict) -> bool:
    for participant in _list(res.get("participant")):
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if not isinstance(actor, dict):
            continue
        ref = actor.get("reference")
        if actor.get("type") == "Patient" or (
            isinstance(ref, str)
            and (re.search(_PATIENT_REF, ref, re.DOTALL) or ref.startswith("urn:"))
        ):
            return True
    return False


def cnlp_1(duration: Any, env: dict) -> bool:
    if not isinstance(duration, dict):
        return True
    value, code = duration.get("value"), duration.get("code")
    positive = None if not isinstance(value, int | float) or isinstance(value, bool) else value > 0
    unit = None if code is None else code in _SUPPLY_UNITS
    return positive is not False and unit is not False


def _entries(res: dict[str, Any]) -> list[dict[str, Any]]:
    resources = (e.get("resource") for e in _list(res.get("entry")) if isinstance(e, dict))
    return [r for r in resources if isinstance(r, dict)]


def _is_referral(request: dict[str, Any]) -> bool:
    meta = request.get("meta")
    claimed = _list(meta.get("profile")) if isinstance(meta, dict) else []
    if any(
        isinstance(p, str) and (p == _REFERRAL or p.startswith(_REFERRAL + "|")) for p in claimed
    ):
        return True
    return any(
        isinstance(c, dict) and c.get("system") == _CATEGORY and c.get("code") == "referral"
        for concept in _list(request.get("category"))
        if isinstance(concept, dict)
        for c in _list(concept.get("coding"))
    )


def cnrb_1(res: dict, env: dict) -> bool:
    requests = [r for r in _entries(res) if r.get("resourceType") == "ServiceRequest"]
    return len(requests) == 1 and _is_referral(requests[0])


def cnrb_2(res: dict, env: dict) -> bool:
    return sum(1 for r in _entries(res) if r.get("resourceType") == "Task") <= 1


def cnrb_3(res: dict, env: dict) -> bool:
    return all(r.get("resourceType") in _BUNDLED for r in _entries(res))


_DIRECTION_CODE = f"extension.where(url = '{_DIRECTION}').value.code"
_FORM_EXT = f"extension.where(url = '{_FORM}')"


def _fits(status: str, codes: tuple[str, ...]) -> str:
    either = " or ".join(f"$this = '{c}'" for c in codes)
    return f"(%resource.status = '{status}' and {either if len(codes) == 1 else f'({either})'})"


NATIVE_REFERRAL: dict[tuple[str, str], Native] = {
    (
        "cnr-2",
        f"extension.where(url = '{_PRIORITY}').empty() or {_DIRECTION_CODE} = 'up'",
    ): cnr_2,
    (
        "cnr-3",
        f"{_FORM_EXT}.extension.where(url = 'impression' or url = 'presentIllness' or url = "
        f"'pastHistory').empty() or {_DIRECTION_CODE} = 'up'",
    ): cnr_3,
    (
        "cnr-4",
        f"{_FORM_EXT}.extension.where(url = 'diagnosis' or url = 'mainResults' or url = "
        f"'advice').empty() or {_DIRECTION_CODE} = 'down'",
    ): cnr_4,
    ("cnr-5", "reasonCode.exists() or reasonReference.exists()"): cnr_5,
    (
        "cnrt-1",
        f"businessStatus.coding.where(system = '{_STATUS}').code.all(%resource.status = "
        "'entered-in-error' or "
        + " or ".join(_fits(s, c) for s, c in BUSINESS_STATUS.items())
        + ")",
    ): cnrt_1,
    (
        "cnap-1",
        "participant.actor.where(type = 'Patient' or reference.matches("
        f"'{_PATIENT_REF}') or reference.startsWith('urn:')).exists()",
    ): cnap_1,
    ("cnlp-1", "value > 0 and (code = 'd' or code = 'wk' or code = 'mo')"): cnlp_1,
    (
        "cnrb-1",
        "entry.resource.ofType(ServiceRequest).count() = 1 and entry.resource.ofType("
        f"ServiceRequest).all(meta.profile.where($this = '{_REFERRAL}' or startsWith("
        f"'{_REFERRAL}|')).exists() or category.coding.where(system = '{_CATEGORY}' and code"
        " = 'referral').exists())",
    ): cnrb_1,
    ("cnrb-2", "entry.resource.ofType(Task).count() <= 1"): cnrb_2,
    (
        "cnrb-3",
        "entry.resource.all("
        + " or ".join(
            f"$this is {t}"
            for t in (
                "ServiceRequest",
                "Task",
                "Observation",
                "DiagnosticReport",
                "DocumentReference",
                "Condition",
                "Composition",
            )
        )
        + ")",
    ): cnrb_3,
}
