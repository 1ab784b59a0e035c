"""Reserved slots and bookings.

- A new free Slot of a kind the hospital's pack reserves (Guangzhou: 20% of expert slots;
  Xinjiang: 50% of outpatient and examination slots) is marked reserved for family-doctor
  teams while its schedule's reserved share is below the pack's.
- A booking (an Appointment holding a Slot) locks the slot and finds any other booking of it:
  no double booking, whatever the concurrency. A reserved slot is only for an accepted
  up-referral. The slot turns busy with the booking and free again when it is cancelled.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from gateway.policy.fhir_values import BASE, codes, extensions, sd, violation
from gateway.policy.lookup import Lookup
from gateway.policy.referrals import DIRECTION, is_referral
from gateway.store.model import Write
from gateway.store.repository import Repository

RESERVATION = sd("cn-slot-reservation")
RESERVATION_CODING = {"system": f"{BASE}/CodeSystem/slot-reservation", "code": "family-doctor-team"}
HOLDING = ("pending", "booked", "arrived", "fulfilled", "checked-in")
ACCEPTED = ("accepted", "in-progress", "completed")
# Slots marked in a transaction not yet written: schedule → (slots, reserved) added so far.
_pending: WeakKeyDictionary[Repository, dict[str, list[int]]] = WeakKeyDictionary()


def is_reserved(slot: dict[str, Any]) -> bool:
    return any(
        (e.get("valueCoding") or {}).get("code") == "family-doctor-team"
        for e in extensions(slot, RESERVATION)
    )


async def _schedule_pack(lookup: Lookup, schedule: dict[str, Any]):  # type: ignore[no-untyped-def]
    for actor in schedule.get("actor") or []:
        ref = await lookup.reference_of(actor)
        if ref and ref.startswith("Organization/"):
            return (await lookup.pack_of(ref))[0]
        found = await lookup.resolve(actor) or {}
        # PractitionerRole.organization, Location.managingOrganization, HealthcareService.providedBy
        org = (
            found.get("organization")
            or found.get("managingOrganization")
            or found.get("providedBy")
        )
        if org:
            return (await lookup.pack_of(org))[0]
    return None


async def mark_slot(repo: Repository, lookup: Lookup, slot: dict[str, Any]) -> None:
    """Before a new slot is stored: reserve it if its schedule's share is short."""
    if slot.get("status") != "free" or is_reserved(slot):
        return
    schedule_ref = await lookup.reference_of(slot.get("schedule"))
    schedule = await lookup.resolve(schedule_ref) if schedule_ref else None
    if schedule is None:
        return
    pack = await _schedule_pack(lookup, schedule)
    if pack is None:
        return
    kinds = codes(slot.get("serviceCategory")) | codes(schedule.get("serviceCategory"))
    shares = [pct for kind, pct in pack.referrals.reserved.items() if kind in kinds]
    if not shares:
        return
    await lookup.lock(f"schedule:{schedule_ref}")
    assert schedule_ref is not None
    stored = await lookup.search("Slot", [("schedule", schedule_ref)], limit=100_000)
    pending = _pending.setdefault(repo, {}).setdefault(schedule_ref, [0, 0])
    total = len(stored) + pending[0] + 1
    reserved = sum(1 for s in stored if is_reserved(s)) + pending[1]
    pending[0] += 1
    if reserved * 100 < max(shares) * total:
        slot.setdefault("extension", []).append(
            {"url": RESERVATION, "valueCoding": dict(RESERVATION_CODING)}
        )
        pending[1] += 1


async def _accepted_up_referral(lookup: Lookup, appointment: dict[str, Any]) -> bool:
    for based in appointment.get("basedOn") or []:
        ref = await lookup.reference_of(based)
        referral = await lookup.resolve(ref) if ref else None
        if not is_referral(referral) or referral is None:
            continue
        direction = [e.get("valueCoding", {}).get("code") for e in extensions(referral, DIRECTION)]
        if "up" not in direction:
            continue
        tasks = await lookup.search("Task", [("focus", str(ref))])
        if any(t.get("status") in ACCEPTED for t in tasks):
            return True
    return False


async def book(lookup: Lookup, appointment: dict[str, Any]) -> list[Write]:
    """After an Appointment is written: its slots are its own, and busy (or free again)."""
    holding = appointment.get("status") in HOLDING
    writes: list[Write] = []
    for i, slot_ref in enumerate(appointment.get("slot") or []):
        ref = await lookup.reference_of(slot_ref)
        if ref is None:
            continue
        await lookup.lock(f"slot:{ref}")
        slot = await lookup.resolve(ref, "Slot")
        if slot is None:
            continue
        others = [
            a
            for a in await lookup.search(
                "Appointment", [("slot", ref), ("status", ",".join(HOLDING))]
            )
            if a.get("id") != appointment.get("id")
        ]
        where = f"Appointment.slot[{i}]"
        if holding:
            if others:
                raise violation(
                    f"{ref} is already booked (Appointment/{others[0].get('id')})",
                    where,
                    "POL-2321",
                    status=409,
                    code="conflict",
                )
            if slot.get("status") in ("busy-unavailable", "entered-in-error"):
                raise violation(
                    f"{ref} is {slot.get('status')}", where, "POL-2322", status=409, code="conflict"
                )
            if is_reserved(slot) and not await _accepted_up_referral(lookup, appointment):
                raise violation(
                    f"{ref} is reserved for family-doctor teams: it is booked for an accepted "
                    "up-referral (basedOn the referral, whose Task the hospital accepted)",
                    where,
                    "POL-2323",
                    status=409,
                    code="conflict",
                )
        status = "busy" if holding or others else "free"
        if slot.get("status") != status:
            writes.append(Write("Slot", str(slot["id"]), {**slot, "status": status}, "PUT"))
    return writes
