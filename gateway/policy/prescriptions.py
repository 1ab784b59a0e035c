"""Long prescriptions (长处方) for contracted chronic patients: the supply of one prescription
(each dispense's expected duration × the dispenses it allows) within the region's maximum
(Guangzhou 60 days, Xinjiang 12 weeks), for a resident with a contract in force."""

from __future__ import annotations

from typing import Any

from gateway.policy.fhir_values import violation
from gateway.policy.lookup import Lookup
from gateway.policy.referrals import contract_in_force, contract_team, organization_of

DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}


def supply_days(prescription: dict[str, Any]) -> float | None:
    dispense = prescription.get("dispenseRequest") or {}
    duration = dispense.get("expectedSupplyDuration") or {}
    value = duration.get("value")
    unit = DAYS.get(str(duration.get("code") or duration.get("unit") or ""))
    if not isinstance(value, int | float) or unit is None:
        return None
    repeats = dispense.get("numberOfRepeatsAllowed") or 0
    return float(value) * unit * (1 + int(repeats))


async def check_long_prescription(lookup: Lookup, prescription: dict[str, Any]) -> None:
    contract = await contract_in_force(lookup, prescription.get("subject"))
    if contract is None:
        raise violation(
            "A long prescription is for a resident with a family-doctor contract in force; "
            f"{(prescription.get('subject') or {}).get('reference')} has none",
            "MedicationRequest.subject",
            "POL-2331",
        )
    org = await organization_of(lookup, prescription.get("requester"))
    if org is None:
        org, _ = await contract_team(lookup, contract)
    pack, _ = await lookup.pack_of(org)
    days = supply_days(prescription)
    limit = pack.prescriptions.long_max_days if pack.prescriptions else None
    if days is None or limit is None:
        return
    if days > limit:
        raise violation(
            f"The prescription supplies {days:g} days; a long prescription in {pack.name} "
            f"supplies at most {limit} days ({pack.region}.yaml prescriptions.long_max_days)",
            "MedicationRequest.dispenseRequest.expectedSupplyDuration",
            "POL-2332",
        )
