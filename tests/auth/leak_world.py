"""One regional world for the access-control tests, and an oracle of who may see what.

The world is written by an admin client through the REST API (ids chosen by the tests, so
expectations can name them). The oracle (`World.sees`) states the issue's rules over what the
tests wrote, independently of gateway/access: residents per role (contracts, referrals,
divisions, Consent denials), their Patient compartments, the directory, what an organisation
wrote itself, the insurer's contract and payment types, the audit trail for admins only.

Every request goes through `World.call`, which sends a unique X-Request-ID and logs
(client, request id, method, url, status), so the audit tests can check that each request
left exactly one AuditEvent with the right outcome.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.auth.clients import ClientStore
from tests.auth.conftest import BASE, SmartClient, new_key
from tests.conftest import truncate_all

EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "examples"
DIVISION = "https://fhir.jtys.cn/StructureDefinition/cn-admin-division"
CATEGORY = "https://fhir.jtys.cn/CodeSystem/family-doctor-category"
CONTRACT = "family-doctor-contract"
REQUEST_SYSTEM = "https://fhir.jtys.cn/sid/request-id"
CLIENT_SYSTEM = "https://fhir.jtys.cn/sid/client"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

# role key → (role, organization, registered scopes or None for the role's, requested scope)
CLIENTS: dict[str, tuple[str, str, str | None, str]] = {
    "admin": ("admin", "Organization/org-admin", None, "system/*.cruds"),
    "pc-a": ("primary-care", "Organization/org-a", None, "system/*.cruds"),
    "pc-b": ("primary-care", "Organization/org-b", None, "system/*.cruds"),
    "hospital": ("hospital", "Organization/org-h", None, "system/*.cruds"),
    "platform": ("platform", "Organization/org-p", None, "system/*.cruds"),
    "insurer": ("insurer", "Organization/org-i", None, "system/*.cruds"),
    "sandbox": ("sandbox", "Organization/org-s", None, "system/*.cruds"),
    # an insurer registered with write scopes: its role policy alone decides its writes
    "insurer-w": ("insurer", "Organization/org-i", "system/*.cruds", "system/*.cruds"),
    # reads the audit trail for the audit checks (its own requests are not checked)
    "auditor": ("admin", "Organization/org-admin", None, "system/*.cruds"),
}
ROLES = ["admin", "pc-a", "pc-b", "hospital", "platform", "insurer", "sandbox"]
PURPOSE = {
    "primary-care": "TREAT",
    "hospital": "TREAT",
    "platform": "HOPERAT",
    "insurer": "HPAYMT",
    "sandbox": "HTEST",
    "admin": "HOPERAT",
}
DIRECTORY = {
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Endpoint",
    "PlanDefinition",
    "ActivityDefinition",
    "ChargeItemDefinition",
    "Medication",
    "Substance",
    "StructureDefinition",
    "SearchParameter",
    "OperationDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "NamingSystem",
    "Questionnaire",
    "Library",
    "Measure",
}
INSURER_TYPES = {"Coverage", "Claim", "ClaimResponse", "ExplanationOfBenefit", "Contract"}
OPEN_TASK = {"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"}
CLOSED_TASK = {"completed", "rejected", "cancelled", "failed"}

# R4 CompartmentDefinition patient: the elements that put a resource of the types this world
# holds into a Patient's compartment; and, for access, the referral Task by its `for` (not in
# R4's compartment, but a resident's record all the same).
COMPARTMENT = {
    "Observation": ("subject", "performer"),
    "Condition": ("subject", "asserter"),
    "Encounter": ("subject",),
    "CarePlan": ("subject",),
    "Consent": ("patient",),
    "Coverage": ("policyHolder", "subscriber", "beneficiary", "payor"),
    "CareTeam": ("subject", "participant.member"),
    "Task": ("for",),
    "Provenance": ("target",),
}

# The residents each role's policy picks in the world as built (before any test changes it).
BASE_RESIDENTS = {
    "pc-a": {"p1"},  # active contract with team A (p3's contract with team A is a draft)
    "pc-b": {"p2"},  # p2's Consent denying B is inactive
    "hospital": {"p4", "p7"},  # p1 referred too but denies H; p5's referral closed long ago
    "platform": {"p1", "p3", "p7"},  # under 4101; p6 denies the purpose HOPERAT
    "insurer": set(),
    "sandbox": set(),
}


def ref_id(reference: str | None, rtype: str) -> str | None:
    """'Patient/p1' or 'Patient/p1/_history/2' → 'p1' (None for another type)."""
    if not reference:
        return None
    parts = reference.split("/")
    if len(parts) >= 2 and parts[0] == rtype:
        return parts[1]
    return None


def refs_at(resource: dict[str, Any], path: str) -> list[str]:
    """The references at a dotted element path (arrays walked)."""
    nodes: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for n in nodes:
            v = n.get(step) if isinstance(n, dict) else None
            if isinstance(v, list):
                nxt.extend(v)
            elif v is not None:
                nxt.append(v)
        nodes = nxt
    return [n["reference"] for n in nodes if isinstance(n, dict) and "reference" in n]


def key_of(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


@dataclass
class Rec:
    """What the tests know about one stored resource."""

    content: dict[str, Any]
    versions: int = 1
    deleted: bool = False
    writers: set[str] = field(default_factory=set)  # organisations that wrote a version

    @property
    def rtype(self) -> str:
        return self.content["resourceType"]


@dataclass
class Logged:
    client: str  # client key
    client_id: str
    request_id: str
    method: str
    url: str
    status: int


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


class World:
    def __init__(self, app: Any):
        self.app = app
        self.http: httpx.AsyncClient | None = None
        self.clients: dict[str, SmartClient] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.recs: dict[str, Rec] = {}
        self.log: list[Logged] = []
        self.notes: dict[str, Any] = {}  # facts gathered while building (sandbox write …)

    # --- HTTP ----------------------------------------------------------------------------
    async def open(self) -> None:
        await truncate_all(self.app.state.core.store.engine)
        self.app.state.tokens.clients._cache.clear()
        transport = httpx.ASGITransport(app=self.app)
        self.http = httpx.AsyncClient(transport=transport, base_url=BASE, timeout=120)
        store: ClientStore = self.app.state.tokens.clients
        for key, (role, org, scopes, _) in CLIENTS.items():
            client = SmartClient(
                f"leak-{key}-{uuid.uuid4().hex[:6]}", new_key("ES384"), "ES384", org, role
            )
            await store.add(client.client_id, org, role, jwks=client.public_jwks(), scopes=scopes)
            self.clients[key] = client

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def token(self, key: str) -> str:
        hit = self._tokens.get(key)
        if hit is not None and time.monotonic() - hit[1] < 150:
            return hit[0]
        assert self.http is not None
        client = self.clients[key]
        r = await self.http.post("/auth/token", data=client.form(CLIENTS[key][3]))
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        self._tokens[key] = (token, time.monotonic())
        return token

    async def call(
        self,
        key: str | None,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One request as the client `key` (None: no Authorization header), logged."""
        assert self.http is not None
        url = url.removeprefix(BASE)
        request_id = str(uuid.uuid4())
        hdrs = {"X-Request-ID": request_id, **(headers or {})}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {await self.token(key)}"
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/fhir+json")
        r = await self.http.request(method, url, headers=hdrs, content=content)
        client_id = self.clients[key].client_id if key is not None else "(unauthenticated)"
        self.log.append(Logged(key or "-", client_id, request_id, method, url, r.status_code))
        return r

    async def fetch_all(self, key: str, url: str) -> tuple[list[dict[str, Any]], int | None]:
        """Every entry of a searchset or history, following `next` links; the first total."""
        entries: list[dict[str, Any]] = []
        total: int | None = None
        first = True
        next_url: str | None = url
        pages = 0
        while next_url:
            r = await self.call(key, "GET", next_url)
            assert r.status_code == 200, f"GET {next_url} as {key}: {r.status_code} {r.text}"
            bundle = r.json()
            if first:
                total = bundle.get("total")
                first = False
            entries.extend(bundle.get("entry", []))
            next_url = next(
                (ln["url"] for ln in bundle.get("link", []) if ln["relation"] == "next"), None
            )
            if next_url:
                parts = urlsplit(next_url)
                next_url = parts.path.removeprefix("/fhir") + "?" + parts.query
            pages += 1
            assert pages < 200, f"paging does not end: {url}"
        return entries, total

    # --- writing the world -----------------------------------------------------------------
    def remember(self, key: str, resource: dict[str, Any], *, new: bool) -> None:
        org = CLIENTS[key][1]
        k = key_of(resource)
        rec = self.recs.get(k)
        if rec is None or new:
            self.recs[k] = Rec(resource, 1 if rec is None else rec.versions + 1, False, {org})
        else:
            rec.content = resource
            rec.versions += 1
            rec.deleted = False
            rec.writers.add(org)

    async def put(self, key: str, resource: dict[str, Any]) -> httpx.Response:
        r = await self.call(key, "PUT", key_of(resource), json_body=resource)
        if r.status_code in (200, 201):
            self.remember(key, r.json(), new=False)
        return r

    async def must_put(self, resource: dict[str, Any], key: str = "admin") -> None:
        r = await self.put(key, resource)
        assert r.status_code in (200, 201), f"PUT {key_of(resource)}: {r.status_code} {r.text}"

    async def delete(self, key: str, ref: str) -> httpx.Response:
        r = await self.call(key, "DELETE", ref)
        if r.status_code == 204 and ref in self.recs and not self.recs[ref].deleted:
            rec = self.recs[ref]
            rec.deleted = True
            rec.versions += 1
        return r

    async def build(self) -> None:
        await self.open()
        for resource in world_resources():
            await self.must_put(resource)
        # p1's record changes once (history with two versions)
        p1 = copy.deepcopy(self.recs["Patient/p1"].content)
        p1.pop("meta", None)
        p1["telecom"] = [{"system": "phone", "value": "13900000001"}]
        await self.must_put(p1)
        # the sandbox writes its own Patient (what it may then see)
        r = await self.put("sandbox", patient("sb-p1", "Sandboxer", None))
        self.notes["sandbox_put"] = (r.status_code, r.text[:400])
        if r.status_code in (200, 201):
            await self.put("sandbox", observation("sb-obs1", "sb-p1"))

    # --- the oracle ------------------------------------------------------------------------
    def current(self, rtype: str | None = None) -> dict[str, Rec]:
        return {
            k: r
            for k, r in self.recs.items()
            if not r.deleted and (rtype is None or r.rtype == rtype)
        }

    def residents(self, key: str) -> set[str] | None:
        """Patient ids the role's selectors pick minus Consent denials; None: not a
        compartment role."""
        role, org, _, _ = CLIENTS[key]
        live = self.current()
        picked: set[str] = set()
        if role == "primary-care":
            teams = {
                k.split("/")[1]
                for k, r in live.items()
                if r.rtype == "CareTeam" and org in refs_at(r.content, "managingOrganization")
            }
            for r in live.values():
                c = r.content
                if r.rtype != "CarePlan" or c.get("status") != "active":
                    continue
                cats = {
                    (cd.get("system"), cd.get("code"))
                    for cat in c.get("category", [])
                    for cd in cat.get("coding", [])
                }
                if (CATEGORY, CONTRACT) not in cats:
                    continue
                if any(ref_id(t, "CareTeam") in teams for t in refs_at(c, "careTeam")):
                    pid = ref_id(c["subject"]["reference"], "Patient")
                    if pid:
                        picked.add(pid)
        elif role == "hospital":
            cutoff = datetime.now(UTC) - timedelta(days=30)
            for r in live.values():
                c = r.content
                if r.rtype != "Task" or org not in refs_at(c, "owner"):
                    continue
                status = c.get("status")
                recent = "lastModified" in c and datetime.fromisoformat(c["lastModified"]) >= cutoff
                if status in OPEN_TASK or (status in CLOSED_TASK and recent):
                    pid = ref_id(c.get("for", {}).get("reference"), "Patient")
                    if pid:
                        picked.add(pid)
        elif role == "platform":
            prefix = division_prefix(ORG_DIVISIONS.get(org))
            for r in live.values():
                if r.rtype == "Patient" and any(
                    d.startswith(prefix) for d in divisions_of(r.content)
                ):
                    picked.add(r.content["id"])
        else:
            return None
        denied = set()
        for r in live.values():
            c = r.content
            if r.rtype != "Consent" or c.get("status") != "active":
                continue
            prov = c.get("provision", {})
            if prov.get("type") != "deny":
                continue
            actors = refs_at(prov, "actor.reference")
            purposes = {(p.get("system"), p.get("code")) for p in prov.get("purpose", [])}
            if org in actors or (ACT_REASON, PURPOSE[role]) in purposes:
                pid = ref_id(c.get("patient", {}).get("reference"), "Patient")
                if pid:
                    denied.add(pid)
        return picked - denied

    def compartment_of(self, rec: Rec) -> set[str]:
        """The Patients whose compartments hold this resource (none once deleted: a deleted
        resource has no references left)."""
        if rec.deleted:
            return set()
        if rec.rtype == "Patient":
            return {rec.content["id"]}
        out = set()
        for path in COMPARTMENT.get(rec.rtype, ()):
            for reference in refs_at(rec.content, path):
                pid = ref_id(reference, "Patient")
                if pid:
                    out.add(pid)
        return out

    def sees(self, key: str, rec: Rec) -> bool:
        role, org, _, _ = CLIENTS[key]
        if role == "admin":
            return True
        rtype = rec.rtype
        if rtype == "AuditEvent":
            return False
        if org in rec.writers:
            return True  # own (every role reads `own`)
        if rtype == "Provenance" and org in refs_at(rec.content, "agent.who"):
            return True  # the Provenance of the client's own write (found with _revinclude)
        if role == "sandbox":
            return False
        if rtype in DIRECTORY:
            return True
        if role == "insurer":
            if rtype in INSURER_TYPES:
                return True
            if rtype == "CarePlan" and not rec.deleted:
                cats = {
                    (cd.get("system"), cd.get("code"))
                    for cat in rec.content.get("category", [])
                    for cd in cat.get("coding", [])
                }
                return (CATEGORY, CONTRACT) in cats
            return False
        residents = self.residents(key) or set()
        return bool(self.compartment_of(rec) & residents)

    def visible(self, key: str, rtype: str | None = None) -> set[str]:
        """'Type/id' of the current resources (of a type) the client may see."""
        return {k for k, r in self.current(rtype).items() if self.sees(key, r)}

    async def provenances(self) -> dict[str, Rec]:
        """Every stored Provenance (the gateway writes them), as the admin sees them."""
        entries, _ = await self.fetch_all("auditor", "Provenance?_count=1000")
        out = {}
        for e in entries:
            res = e["resource"]
            out[key_of(res)] = Rec(res, int(res["meta"]["versionId"]))
        return out

    async def audit_trail(
        self, expect: set[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Every stored AuditEvent by the request id it names, and those naming none, once the
        audit log is flushed (retried briefly while the background flush still holds some of
        the request ids in `expect`)."""
        by_request: dict[str, list[dict[str, Any]]] = {}
        anonymous: list[dict[str, Any]] = []
        for _ in range(10):
            await self.app.state.audit_log.flush()
            entries, _ = await self.fetch_all("auditor", "AuditEvent?_count=1000")
            by_request, anonymous = {}, []
            for e in entries:
                event = e["resource"]
                rid = request_id_of(event)
                if rid is None:
                    anonymous.append(event)
                else:
                    by_request.setdefault(rid, []).append(event)
            if expect <= by_request.keys():
                break
            await asyncio.sleep(0.5)
        return by_request, anonymous


def request_id_of(event: dict[str, Any]) -> str | None:
    return next(
        (
            x["what"]["identifier"]["value"]
            for x in event.get("entity", [])
            if x.get("what", {}).get("identifier", {}).get("system") == REQUEST_SYSTEM
        ),
        None,
    )


# --- resources -----------------------------------------------------------------------------
ORG_DIVISIONS = {
    "Organization/org-a": "410102",
    "Organization/org-b": "410105",
    "Organization/org-h": "410103",
    "Organization/org-p": "410100",
}


def division_prefix(code: str | None) -> str:
    if not code:
        return "\ue000none"
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def divisions_of(resource: dict[str, Any]) -> list[str]:
    return [
        ext.get("valueCode", "")
        for a in resource.get("address", [])
        for ext in a.get("extension", [])
        if ext.get("url") == DIVISION
    ]


def organization(oid: str, name: str, division: str | None) -> dict[str, Any]:
    org: dict[str, Any] = {"resourceType": "Organization", "id": oid, "active": True, "name": name}
    if division:
        org["address"] = [
            {"extension": [{"url": DIVISION, "valueCode": division}], "text": f"{name}, {division}"}
        ]
    return org


# family names: unique per resident (chains name them); every resident's given name is Shared
NAMES = {
    "p1": "Anxin",
    "p2": "Baoshan",
    "p3": "Chenguang",
    "p4": "Dongfang",
    "p5": "Enhui",
    "p6": "Fengyi",
    "p7": "Guangming",
}
DIVISIONS = {
    "p1": "410102",
    "p2": "410305",
    "p3": "410102",
    "p4": None,
    "p5": "411002",
    "p6": "410105",
    "p7": "410181",
}


def patient(pid: str, family: str, division: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "active": True,
        "name": [{"family": family, "given": ["Shared"]}],
        "gender": "female",
        "birthDate": "1960-05-01",
    }
    if division:
        p["address"] = [
            {
                "extension": [{"url": DIVISION, "valueCode": division}],
                "text": f"{family} home, {division}",
            }
        ]
    return p


def observation(oid: str, pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2026-03-01T08:00:00+08:00",
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        **extra,
    }


def condition(cid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def encounter(eid: str, pid: str, org: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": org},
    }


def care_team(tid: str, org: str) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": tid,
        "status": "active",
        "name": f"team {tid}",
        "participant": [{"member": {"reference": "Practitioner/prac-1"}}],
        "managingOrganization": [{"reference": org}],
    }


def contract(cid: str, pid: str, team: str, number: str, status: str = "active") -> dict:
    """A family-doctor contract, from our valid example (profiles/examples)."""
    doc = json.loads((EXAMPLES / "CarePlan-cn-contract-wang-2026.json").read_text("utf-8"))
    doc.pop("replaces", None)  # not a renewal here: a new contract
    for ext in doc["extension"]:
        if ext["url"].endswith("/cn-sign-type"):
            ext["valueCoding"] = {**ext["valueCoding"], "code": "new", "display": "新签"}
    doc.pop("text", None)
    doc["id"] = cid
    doc["subject"] = {"reference": f"Patient/{pid}"}
    doc["careTeam"] = [{"reference": f"CareTeam/{team}"}]
    doc["identifier"][0]["value"] = number
    doc["status"] = status
    return doc


def referral_task(tid: str, pid: str, org: str, status: str, modified: datetime) -> dict:
    """A referral Task, from our example: owned by `org`, for the Patient."""
    doc = json.loads((EXAMPLES / "Task-cn-referral-task-wang.json").read_text("utf-8"))
    doc.pop("text", None)
    doc["id"] = tid
    doc["for"] = {"reference": f"Patient/{pid}"}
    doc["owner"] = {"reference": org}
    doc["status"] = status
    # the business status that fits the status (cn-referral-task, cnrt-1)
    fits = {"requested": "submitted", "rejected": "declined", "in-progress": "arrived"}
    business = fits.get(status, status)
    doc["businessStatus"]["coding"][0]["code"] = business
    doc["businessStatus"]["coding"][0].pop("display", None)
    doc["authoredOn"] = _iso(modified - timedelta(hours=1))
    doc["lastModified"] = _iso(modified)
    return doc


def consent(
    cid: str, pid: str, status: str, *, actor: str | None = None, purpose: str | None = None
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny"}
    if actor:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"reference": actor},
            }
        ]
    if purpose:
        provision["purpose"] = [{"system": ACT_REASON, "code": purpose}]
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}
            ]
        },
        "provision": provision,
    }


def world_resources() -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = [
        organization("org-a", "Centre A", "410102"),
        organization("org-b", "Centre B", "410105"),
        organization("org-h", "Hospital H", "410103"),
        organization("org-p", "Platform P", "410100"),
        organization("org-i", "Insurer I", None),
        organization("org-s", "Sandbox S", None),
        {"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Doctor"}]},
        {
            "resourceType": "ChargeItemDefinition",
            "id": "cid-1",
            "status": "active",
            "url": "https://fhir.jtys.cn/test/ChargeItemDefinition/cid-1",
        },
        {"resourceType": "PlanDefinition", "id": "pd-1", "status": "active", "name": "Pkg1"},
        care_team("team-a", "Organization/org-a"),
        care_team("team-b", "Organization/org-b"),
    ]
    out += [patient(pid, NAMES[pid], DIVISIONS[pid]) for pid in NAMES]
    out += [observation(f"obs-{pid}", pid) for pid in NAMES if pid != "p1"]
    out.append(observation("obs-p1", "p1", encounter={"reference": "Encounter/enc-p1"}))
    out += [
        # in p3's compartment (subject) and in p2's (performer)
        observation("obs-p3-perf", "p3", performer=[{"reference": "Patient/p2"}]),
        # p1's observation grouping p2's
        observation("obs-p1-member", "p1", hasMember=[{"reference": "Observation/obs-p2"}]),
        condition("cond-p1", "p1"),
        condition("cond-p2", "p2"),
        condition("cond-p4", "p4"),
        encounter("enc-p1", "p1", "Organization/org-a"),
        encounter("enc-p4", "p4", "Organization/org-h"),
        contract("c1", "p1", "team-a", "QY410102202690001"),
        contract("c2", "p2", "team-b", "QY410105202690002"),
        contract("c3", "p3", "team-a", "QY410102202690003", status="draft"),
        {
            "resourceType": "CarePlan",
            "id": "cp-p1-plain",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/p1"},
        },
        consent("consent-p1", "p1", "active", actor="Organization/org-h"),
        consent("consent-p2", "p2", "inactive", actor="Organization/org-b"),
        consent("consent-p6", "p6", "active", purpose="HOPERAT"),
        referral_task("task-p1", "p1", "Organization/org-h", "accepted", now - timedelta(days=1)),
        referral_task("task-p4", "p4", "Organization/org-h", "requested", now - timedelta(days=1)),
        referral_task(
            "task-p5", "p5", "Organization/org-h", "completed", datetime(2020, 1, 10, tzinfo=UTC)
        ),
        referral_task("task-p7", "p7", "Organization/org-h", "completed", now - timedelta(days=2)),
        {
            "resourceType": "Coverage",
            "id": "cov-p1",
            "status": "active",
            "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"reference": "Organization/org-i"}],
        },
    ]
    return out
