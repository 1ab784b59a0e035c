"""Two-way referrals (双向转诊): the referral ServiceRequest against the resident's contract, and
its Task's workflow.

- Up: a resident with a contract in force gets the three priorities (专家号, 检查, 住院), added
  when the referral carries none; without one, priorities and the green channel are refused.
- Down: routed to the family-doctor team of the contract in force (its responsible doctor as
  the intended performer, its institution as the Task's owner); without one it is refused.
  The green channel goes down only where the region's pack allows it.
- A referral posted alone gets its Task (requested / submitted) in the same transaction.
- The Task moves only along the pack's steps, with a business status that fits, each step by
  the side it belongs to (the owner receives, accepts, rejects; the requester cancels).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.policy.contract_terms import period_of
from gateway.policy.contracts import CONTRACT
from gateway.policy.fhir_values import (
    BASE,
    ext_code,
    extensions,
    has_category,
    sd,
    today,
    violation,
)
from gateway.policy.lookup import Lookup
from gateway.policy.pack import PolicyPack, TaskFlow
from gateway.store.model import Write
from gateway.vocab import outcomes

DIRECTION = sd("cn-referral-direction")
GREEN = sd("cn-green-channel")
PRIORITY = sd("cn-referral-priority")
PRIORITIES = {
    "expert-appointment": "优先专家号",
    "examination": "优先检查",
    "admission": "优先住院",
}
STATUS_SYSTEM = f"{BASE}/CodeSystem/referral-status"
TASK_PROFILE = sd("cn-referral-task")
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"


def is_referral(resource: dict[str, Any] | None) -> bool:
    return (
        resource is not None
        and resource.get("resourceType") == "ServiceRequest"
        and has_category(resource, "referral")
    )


def is_referral_task(resource: dict[str, Any] | None) -> bool:
    if resource is None or resource.get("resourceType") != "Task":
        return False
    if TASK_PROFILE in ((resource.get("meta") or {}).get("profile") or []):
        return True
    return any(
        c.get("system") == STATUS_SYSTEM
        for c in (resource.get("businessStatus") or {}).get("coding") or []
    )


def _green(resource: dict[str, Any]) -> bool:
    return any(e.get("valueBoolean") is True for e in extensions(resource, GREEN))


async def contract_in_force(lookup: Lookup, subject: Any) -> dict[str, Any] | None:
    """The resident's active contract covering today (else any active one)."""
    ref = await lookup.reference_of(subject)
    if ref is None:
        return None
    found = await lookup.search(
        "CarePlan", [("subject", ref), ("category", CONTRACT), ("status", "active")]
    )
    now = today()
    for contract in found:
        start, end = period_of(contract)
        if (start is None or start <= now) and (end is None or now <= end):
            return contract
    return found[0] if found else None


async def contract_team(lookup: Lookup, contract: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the team's institution, the responsible doctor) of a contract."""
    doctor = (contract.get("author") or {}).get("reference")
    team_ref = (contract.get("careTeam") or [None])[0]
    team = await lookup.resolve(team_ref, "CareTeam") if team_ref else None
    orgs = (team or {}).get("managingOrganization") or []
    org = await lookup.reference_of(orgs[0]) if orgs else None
    if org is None and doctor:
        role = await lookup.resolve(doctor, "PractitionerRole")
        org = await lookup.reference_of((role or {}).get("organization"))
    return org, doctor


async def organization_of(lookup: Lookup, ref: Any) -> str | None:
    """An Organization reference itself, or the organisation a PractitionerRole acts for."""
    text = await lookup.reference_of(ref)
    if text is None or text.startswith("Organization/"):
        return text
    if text.startswith("PractitionerRole/"):
        role = await lookup.resolve(text, "PractitionerRole")
        return await lookup.reference_of((role or {}).get("organization"))
    return None


async def check_referral(lookup: Lookup, referral: dict[str, Any]) -> None:
    """Before a referral is stored: priorities, green channel and routing (may add the
    priorities and the performer)."""
    direction = ext_code(referral, DIRECTION)
    contract = await contract_in_force(lookup, referral.get("subject"))
    priorities = extensions(referral, PRIORITY)
    green = _green(referral)
    if contract is None:
        pack, _ = await lookup.pack_of(await organization_of(lookup, referral.get("requester")))
    else:
        org, _ = await contract_team(lookup, contract)
        pack, _ = await lookup.pack_of(org)
    if direction == "up":
        if contract is None and (priorities or green):
            raise violation(
                "The three priorities and the green channel are for residents with a family-"
                "doctor contract in force; this resident has none (the referral goes through "
                "without them)",
                f"ServiceRequest.extension('{PRIORITY if priorities else GREEN}')",
                "POL-2301",
            )
        if contract is not None and not priorities:
            referral.setdefault("extension", []).extend(
                {
                    "url": PRIORITY,
                    "valueCoding": {
                        "system": f"{BASE}/CodeSystem/referral-priority",
                        "code": code,
                        "display": display,
                    },
                }
                for code, display in PRIORITIES.items()
            )
    elif direction == "down":
        await _route_down(lookup, pack, referral, contract, green)


async def _route_down(
    lookup: Lookup,
    pack: PolicyPack,
    referral: dict[str, Any],
    contract: dict[str, Any] | None,
    green: bool,
) -> None:
    subject = (referral.get("subject") or {}).get("reference")
    if contract is None:
        raise violation(
            f"{subject} has no family-doctor contract in force: a down-referral returns the "
            "resident to the team of their contract (sign one first, or refer to an institution "
            "directly without the down-referral workflow)",
            "ServiceRequest.subject",
            "POL-2302",
        )
    if green and not pack.referrals.green_channel_down:
        raise violation(
            f"The green channel is for up-referrals in {pack.name} ({pack.region}.yaml)",
            f"ServiceRequest.extension('{GREEN}')",
            "POL-2303",
        )
    org, doctor = await contract_team(lookup, contract)
    performers = referral.get("performer") or []
    if not performers:
        if doctor:
            referral["performer"] = [{"reference": doctor}]
        return
    named = {await lookup.reference_of(p) for p in performers}
    named_orgs = {await organization_of(lookup, p) for p in performers}
    if doctor not in named and org not in named_orgs:
        raise violation(
            f"{subject}'s contract in force (CarePlan/{contract.get('id')}) is with "
            f"{org or 'an individual doctor'} (responsible doctor {doctor}): a down-referral "
            "goes to them",
            "ServiceRequest.performer",
            "POL-2304",
        )


async def task_for(lookup: Lookup, referral: dict[str, Any], ref: str) -> Write | None:
    """The Task a referral posted without one gets (None when it has one)."""
    if await lookup.count("Task", [("focus", ref)]):
        return None
    direction = ext_code(referral, DIRECTION)
    owner: str | None = None
    if direction == "down":
        contract = await contract_in_force(lookup, referral.get("subject"))
        if contract is not None:
            owner, _ = await contract_team(lookup, contract)
    for performer in referral.get("performer") or []:
        owner = owner or await organization_of(lookup, performer)
    if owner is None:
        raise violation(
            "A referral posted without its Task names the receiving institution in "
            "`performer` (an Organization, or a PractitionerRole of it): the Task's owner",
            "ServiceRequest.performer",
            "POL-2305",
        )
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [TASK_PROFILE]},
        "status": "requested",
        "businessStatus": {"coding": [{"system": STATUS_SYSTEM, "code": "submitted"}]},
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": ref},
        "for": referral.get("subject"),
        "authoredOn": now,
        "lastModified": now,
        "requester": referral.get("requester"),
        "owner": {"reference": owner},
    }
    if referral.get("priority"):
        task["priority"] = referral["priority"]
    return Write("Task", str(uuid.uuid4()), task, "POST", create_only=True)


def _status_code(task: dict[str, Any]) -> str | None:
    for c in (task.get("businessStatus") or {}).get("coding") or []:
        if c.get("system") == STATUS_SYSTEM:
            return str(c.get("code"))
    return None


async def check_task(
    lookup: Lookup,
    flow: TaskFlow,
    task: dict[str, Any],
    old: dict[str, Any] | None,
    organization: str | None,
    role: str | None = None,
) -> None:
    new = str(task.get("status"))
    before = None if old is None else str(old.get("status"))
    if before is None:
        if new not in flow.initial:
            raise violation(
                f"A referral Task starts as {', '.join(flow.initial)}, not '{new}'",
                "Task.status",
                "POL-2311",
            )
    elif before != new and new not in flow.transitions.get(before, []):
        allowed = flow.transitions.get(before, [])
        raise violation(
            f"A referral Task cannot go from '{before}' to '{new}'; from '{before}' it may go "
            f"to: {', '.join(allowed) if allowed else 'none (the referral is closed)'}",
            "Task.status",
            "POL-2312",
        )
    business = _status_code(task)
    fits = flow.business_status.get(new, [])
    if business is not None and business not in fits:
        raise violation(
            f"Business status '{business}' does not fit status '{new}' (it fits: "
            f"{', '.join(fits) or 'none'})",
            "Task.businessStatus",
            "POL-2313",
        )
    side = flow.actors.get(new)
    if organization is None or before is None or before == new or side is None:
        return  # the gateway itself, authentication off, a Task recorded, or no step taken
    if role in flow.any_step_roles:
        return
    party = await organization_of(lookup, task.get(side))
    if party != organization:
        raise outcomes.error(
            403,
            "forbidden",
            "POL-2314",
            f"Moving a referral to '{new}' is the {side}'s step ({party or 'not named'}); "
            f"this client acts for {organization}",
            "Task.status",
        )
