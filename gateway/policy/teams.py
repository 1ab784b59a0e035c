"""A family-doctor team against its region's pack: a model the region uses, and the members
that model requires (roles from the participant and its PractitionerRole, specialties from the
PractitionerRole; a specialty code covers its sub-specialties)."""

from __future__ import annotations

from typing import Any

from gateway.policy.fhir_values import codes, ext_code, sd, violation
from gateway.policy.lookup import Lookup
from gateway.policy.pack import Requirement

TEAM_MODEL = sd("cn-team-model")


async def _members(lookup: Lookup, team: dict[str, Any]) -> list[tuple[set[str], set[str]]]:
    """Each participant's (roles, specialties)."""
    out: list[tuple[set[str], set[str]]] = []
    for p in team.get("participant") or []:
        roles = codes(p.get("role"))
        specialties: set[str] = set()
        role = await lookup.resolve(p.get("member"), "PractitionerRole")
        if role is not None:
            roles |= codes(role.get("code"))
            specialties = codes(role.get("specialty"))
        out.append((roles, specialties))
    return out


def _meets(req: Requirement, roles: set[str], specialties: set[str]) -> bool:
    return bool(roles & set(req.roles)) or any(
        s == want or s.startswith(want + ".") for s in specialties for want in req.specialties
    )


async def check_team(lookup: Lookup, team: dict[str, Any]) -> None:
    orgs = team.get("managingOrganization") or []
    if not orgs:
        return
    pack, _ = await lookup.pack_of(orgs[0])
    models = pack.teams.models
    model = ext_code(team, TEAM_MODEL)
    if not models or model is None:
        return
    where = f"({pack.name}, {pack.region}.yaml)"
    if model not in models:
        raise violation(
            f"Team model '{model}' is not one the region uses: {', '.join(models)} {where}",
            f"CareTeam.extension('{TEAM_MODEL}')",
            "POL-2201",
        )
    members = await _members(lookup, team)
    missing: list[str] = []
    for req in models[model].required:
        have = sum(1 for roles, specs in members if _meets(req, roles, specs))
        if have < req.min:
            missing.append(req.label if req.min == 1 else f"{req.label} ×{req.min} (has {have})")
    if missing:
        raise violation(
            f"A '{model}' team needs {', '.join(missing)}: missing from its members {where}",
            "CareTeam.participant",
            "POL-2202",
        )
