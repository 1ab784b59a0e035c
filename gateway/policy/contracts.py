"""The contract rules that need other resources: which pack governs a contract (its team's
institution, else its doctor's), one contract in force per resident (so one responsible
doctor), and the team's capacity.

Both counting rules lock first (an advisory lock on PostgreSQL, held to commit; SQLite
writers are serial), then read with the transaction's own writes in view: two contracts for
one resident racing each other find one another, whichever commits first.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.contract_terms import period_of
from gateway.policy.fhir_values import CATEGORY_SYSTEM, violation
from gateway.policy.lookup import Lookup
from gateway.policy.pack import PolicyPack

CONTRACT = f"{CATEGORY_SYSTEM}|family-doctor-contract"
HOUSEHOLD_CONTRACT = "https://fhir.jtys.cn/sid/household-contract"
CAPACITY_SLACK = 200


async def governing_pack(lookup: Lookup, contract: dict[str, Any]) -> tuple[PolicyPack, str | None]:
    """The pack of the institution the contract is signed with."""
    team_ref = (contract.get("careTeam") or [None])[0]
    if team_ref:
        team = await lookup.resolve(team_ref, "CareTeam")
        for org in (team or {}).get("managingOrganization") or []:
            return await lookup.pack_of(org)
    author = contract.get("author")
    if author:
        role = await lookup.resolve(author, "PractitionerRole")
        if role and role.get("organization"):
            return await lookup.pack_of(role["organization"])
    return lookup.packs.national, None


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a_start, a_end = period_of(a)
    b_start, b_end = period_of(b)
    return (a_start is None or b_end is None or a_start <= b_end) and (
        b_start is None or a_end is None or b_start <= a_end
    )


async def check_one_in_force(lookup: Lookup, pack: PolicyPack, contract: dict[str, Any]) -> None:
    c = pack.contracts
    if not c.one_in_force or contract.get("status") not in c.in_force:
        return
    subject = await lookup.reference_of(contract.get("subject"))
    if subject is None:
        return  # the profile requires a subject; an unresolvable one fails the transaction
    await lookup.lock(f"contract-subject:{subject}")
    others = await lookup.search(
        "CarePlan",
        [("subject", subject), ("category", CONTRACT), ("status", ",".join(c.in_force))],
    )
    for other in others:
        if other.get("id") == contract.get("id") or not _overlap(contract, other):
            continue
        team = ((other.get("careTeam") or [{}])[0]).get("reference", "no team")
        doctor = (other.get("author") or {}).get("reference", "no doctor")
        start, end = period_of(other)
        raise violation(
            f"{subject} already has a contract in force: CarePlan/{other.get('id')} "
            f"({other.get('status')}, {start}–{end}, team {team}, responsible doctor {doctor}). "
            "One contract and one responsible doctor at a time: terminate or end it first, "
            "or renew it from its end",
            "CarePlan.subject",
            "POL-2101",
            status=409,
            code="conflict",
        )


async def check_replaces(lookup: Lookup, contract: dict[str, Any]) -> None:
    """A renewal or switch replaces a contract of the same resident that ends before it
    starts, or is ended (terminated, expired)."""
    subject = await lookup.reference_of(contract.get("subject"))
    start, _ = period_of(contract)
    for i, ref in enumerate(contract.get("replaces") or []):
        old = await lookup.resolve(ref, "CarePlan")
        if old is None:
            continue  # reference integrity is the core's concern
        where = f"CarePlan.replaces[{i}]"
        if await lookup.reference_of(old.get("subject")) != subject:
            raise violation(
                f"CarePlan/{old.get('id')} is another resident's contract; a contract replaces "
                "one of its own resident",
                where,
                "POL-2103",
            )
        _, old_end = period_of(old)
        if old.get("status") in ("active", "on-hold") and start and old_end and start <= old_end:
            raise violation(
                f"CarePlan/{old.get('id')} is in force until {old_end}; its successor starts "
                "after that day, or the old contract is ended first",
                where,
                "POL-2104",
            )


async def check_capacity(
    lookup: Lookup, pack: PolicyPack, contract: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """A team at its cap takes no new contract (a member of a household the team already
    serves adds no household)."""
    cap = pack.teams.capacity
    team_ref = (contract.get("careTeam") or [None])[0]
    if cap is None or not team_ref or contract.get("status") not in pack.contracts.in_force:
        return
    team = await lookup.reference_of(team_ref)
    if team is None:
        return
    if old is not None and old.get("status") in pack.contracts.in_force:
        old_team = await lookup.reference_of((old.get("careTeam") or [None])[0])
        if old_team == team:
            return  # not a new contract for this team
    query = [
        ("care-team", team),
        ("category", CONTRACT),
        ("status", ",".join(pack.contracts.in_force)),
    ]
    # Far below the cap, no lock: concurrent writers (at most the connection pools' size, far
    # fewer than CAPACITY_SLACK) cannot carry the count past it, and a team's contracts would
    # otherwise all queue on one lock. Near the cap, lock and count exactly.
    if await _households(lookup, query, cap.unit, contract, team_ref) + CAPACITY_SLACK <= cap.max:
        return
    await lookup.lock(f"team-capacity:{team}")
    count = await _households(lookup, query, cap.unit, contract, team_ref)
    if count > cap.max:
        raise violation(
            f"{team} is at its capacity: this contract would make {count} {cap.unit} under "
            f"contract, the cap is {cap.max} ({pack.name}, {pack.region}.yaml)",
            "CarePlan.careTeam",
            "POL-2102",
        )


async def _households(
    lookup: Lookup, query: list[tuple[str, str]], unit: str, contract: dict[str, Any], team_ref: Any
) -> int:
    """What the team serves with this contract: persons, or households (contracts sharing a
    household-contract identifier count once)."""
    # The contract's own index rows name the team only once its reference is literal (a
    # conditional one is resolved at the end of the transaction): count it in by hand then.
    counted = "?" not in str((team_ref or {}).get("reference", ""))
    if unit == "persons":
        return await lookup.count("CarePlan", query) + (0 if counted else 1)
    count = await lookup.count_distinct_identifier("CarePlan", query, HOUSEHOLD_CONTRACT)
    household = _household(contract)
    if not counted and (
        household is None
        or not await lookup.count(
            "CarePlan", [*query, ("identifier", f"{HOUSEHOLD_CONTRACT}|{household}")]
        )
    ):
        count += 1
    return count


def _household(contract: dict[str, Any]) -> str | None:
    for ident in contract.get("identifier") or []:
        if ident.get("system") == HOUSEHOLD_CONTRACT and ident.get("value"):
            return str(ident["value"])
    return None
