"""Resources for the rule tests: an institution in a region, its team, residents, contracts
(in the shapes of our profiles), posted through the API."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

BASE = "https://fhir.jtys.cn"
CATEGORY = f"{BASE}/CodeSystem/family-doctor-category"
_serial = itertools.count(1)

# team model → (team role, specialty) of each member, as the region's pack requires
MEMBERS = {
    "1+1+1": [("gp", "03"), ("specialist", "04"), ("specialist", "05.01"), ("public-health", "01")],
    "three-rings": [("gp", "02"), ("nurse", None), ("public-health", "01")],
    "1+N": [("specialist", "03"), ("gp", "02")],
    "5+X": [
        ("specialist", "03"),
        ("gp", "02"),
        ("tcm", "50"),
        ("public-health", "01"),
        ("nurse", None),
    ],
}
DIVISIONS = {
    "zhongyuan": "410102",
    "guangzhou": "440104",
    "xinjiang": "650102",
    "guandu": "530111",
    "hangzhou": "330106",
    "elsewhere": "110101",
}
MODELS = {
    "zhongyuan": "1+1+1",
    "guangzhou": "three-rings",
    "xinjiang": "1+N",
    "guandu": "5+X",
    "hangzhou": "1+1+1",
    "elsewhere": "1+1+1",
}


def coding(system: str, code: str) -> dict[str, Any]:
    return {"system": f"{BASE}/CodeSystem/{system}", "code": code}


def ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": f"{BASE}/StructureDefinition/{name}", **value}


async def post(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, (resource["resourceType"], r.text)
    return r.json()


async def organization(client: httpx.AsyncClient, region: str) -> str:
    org = await post(
        client,
        {
            "resourceType": "Organization",
            "name": f"{region} 社区卫生服务中心",
            "address": [{"extension": [ext("cn-admin-division", valueCode=DIVISIONS[region])]}],
        },
    )
    return f"Organization/{org['id']}"


async def role(client: httpx.AsyncClient, org: str, team_role: str, specialty: str | None) -> str:
    n = next(_serial)
    practitioner = await post(
        client, {"resourceType": "Practitioner", "name": [{"text": f"医生{n}"}]}
    )
    body: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": f"Practitioner/{practitioner['id']}"},
        "organization": {"reference": org},
        "code": [{"coding": [coding("team-role", team_role)]}],
    }
    if specialty:
        body["specialty"] = [{"coding": [coding("clinical-specialty", specialty)]}]
    made = await post(client, body)
    return f"PractitionerRole/{made['id']}"


def team_body(org: str, model: str, members: list[tuple[str, str]]) -> dict[str, Any]:
    participants = []
    for i, (team_role, ref) in enumerate(members):
        p: dict[str, Any] = {
            "extension": [ext("cn-team-ring", valueCoding=coding("team-ring", "ring-1"))],
            "role": [{"coding": [coding("team-role", team_role)]}],
            "member": {"reference": ref},
        }
        if i == 0:
            p["extension"].append(ext("cn-first-responsible", valueBoolean=True))
        participants.append(p)
    return {
        "resourceType": "CareTeam",
        "extension": [ext("cn-team-model", valueCoding=coding("team-model", model))],
        "identifier": [{"system": f"{BASE}/sid/team", "value": f"T{next(_serial):06d}"}],
        "status": "active",
        "category": [{"coding": [{"system": CATEGORY, "code": "family-doctor-team"}]}],
        "name": f"{model} 团队",
        "participant": participants,
        "managingOrganization": [{"reference": org}],
    }


class Region:
    """An institution of `region` with a complete team of the region's model."""

    def __init__(self, org: str, team: str, doctor: str, package: str):
        self.org, self.team, self.doctor = org, team, doctor
        self.package = package  # one the region's pack offers

    @classmethod
    async def make(cls, client: httpx.AsyncClient, region: str, org: str | None = None) -> Region:
        """`org`: an institution that exists already (else one is made in `region`)."""
        org = org or await organization(client, region)
        model = MODELS[region]
        members = [(r, await role(client, org, r, s)) for r, s in MEMBERS[model]]
        team = await post(client, team_body(org, model, members))
        package = (
            "cn-zj-contract-service-fee" if region == "hangzhou" else "cn-basic-medical-package"
        )
        return cls(org, f"CareTeam/{team['id']}", members[0][1], package)


async def patient(client: httpx.AsyncClient) -> str:
    n = next(_serial)
    made = await post(client, {"resourceType": "Patient", "name": [{"text": f"居民{n}"}]})
    return f"Patient/{made['id']}"


def contract(
    subject: str,
    region: Region,
    start: str = "2026-01-01",
    end: str = "2026-12-31",
    status: str = "active",
    sign_type: str = "new",
    packages: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "CarePlan",
        "extension": [
            ext("cn-sign-type", valueCoding=coding("sign-type", sign_type)),
            ext("cn-signing-channel", valueCoding=coding("signing-channel", "on-site")),
        ],
        "identifier": [{"system": f"{BASE}/sid/contract", "value": f"QY{next(_serial):08d}"}],
        "status": status,
        "intent": "plan",
        "category": [{"coding": [{"system": CATEGORY, "code": "family-doctor-contract"}]}],
        "subject": {"reference": subject},
        "period": {"start": start, "end": end},
        "careTeam": [{"reference": region.team}],
        "author": {"reference": region.doctor},
        "created": f"{start}T09:00:00+08:00",
    }
    body["instantiatesCanonical"] = [
        f"{BASE}/PlanDefinition/{p}" for p in (packages or [region.package])
    ]
    body.update(extra)
    return body


def code_of(response: httpx.Response) -> str:
    """The message code of the first issue (POL-…, VAL-…, GW-…)."""
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def issue_text(response: httpx.Response) -> str:
    return " ".join(i.get("diagnostics", "") for i in response.json().get("issue", []))
