"""The leak matrix: every role × the resource kinds of one regional world × every access path.

One world per module and database (tests/auth/leak_world.py): two primary-care centres A and
B, a hospital H, a platform P (division 410100), an insurer I, a sandbox S and an admin; seven
residents with contracts, referrals, divisions and Consents; their clinical data; directory
resources. For each role the exact set of resources each path returns is asserted against the
oracle `World.sees`, which states the issue's rules independently of gateway/access:

- read, vread, instance/type/system history, type search, system search (with and without
  _type), _total, paging;
- _include of forbidden targets, _revinclude of forbidden sources, :iterate, chains through a
  forbidden resource, _has through a forbidden source;
- Patient/[id]/$everything and Patient/$everything, [type]/[id]/$validate;
- batch and transaction entries (reads 404, writes 403), conditional create/update/patch/
  delete matching a forbidden resource (403, nothing of it revealed);
- denied and allowed writes (403 with an OperationOutcome; 201 leaving a Provenance the
  writer finds with _revinclude=Provenance:target), 401 without a valid token;
- a resident moving out of a centre's scope (its contract deleted): gone from every path;
- every request of the module left exactly one AuditEvent with the right outcome.

Where the issue leaves a choice, the policy data (profiles/policy/access.yaml) decides: a
role's residents bring in their Patient compartments as R4 defines them (a Task is in none, so
the hospital does not see the referral Tasks it owns; a centre does not see its own CareTeam
unless it wrote it); `own` is what the client's organisation wrote, the Provenance of those
writes included (the issue: a write's Provenance is returned with _revinclude).

Each failure message names what leaked (returned but not allowed) and what is missing.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.auth.leak_world import (
    BASE_RESIDENTS,
    CLIENTS,
    NAMES,
    ROLES,
    Rec,
    World,
    contract,
    divisions_of,
    key_of,
    observation,
    patient,
    refs_at,
)

NON_ADMIN = [r for r in ROLES if r != "admin"]
# the types the world holds (Provenance and AuditEvent are the gateway's)
TYPES = [
    "Patient",
    "Observation",
    "Condition",
    "Encounter",
    "CarePlan",
    "CareTeam",
    "Consent",
    "Task",
    "Coverage",
    "Organization",
    "Practitioner",
    "ChargeItemDefinition",
    "PlanDefinition",
]


@pytest.fixture(scope="module")
async def world(auth_app):
    w = World(auth_app)
    await w.build()
    yield w
    await w.close()


# --- helpers ---------------------------------------------------------------------------------
def norm(reference: str) -> str:
    """'Patient/p1/_history/2' or an absolute URL → 'Patient/p1'."""
    reference = reference.split("/fhir/", 1)[-1]
    parts = reference.split("/")
    return f"{parts[0]}/{parts[1]}" if len(parts) >= 2 else reference


def keys(entries: list[dict[str, Any]], mode: str | None = None) -> list[str]:
    out = []
    for e in entries:
        res = e.get("resource")
        if res is None or res.get("resourceType") == "OperationOutcome":
            continue
        if mode is not None and e.get("search", {}).get("mode") != mode:
            continue
        out.append(key_of(res))
    return out


def check(expected: set[str], actual: list[str] | set[str], what: str) -> None:
    got = set(actual)
    leaked, missing = sorted(got - expected), sorted(expected - got)
    dupes = (
        sorted(k for k, n in Counter(actual).items() if n > 1) if isinstance(actual, list) else []
    )
    assert not leaked and not missing and not dupes, (
        f"{what}: leaked {leaked}, missing {missing}, duplicated {dupes}"
    )


def is_outcome(r: Any) -> bool:
    try:
        return r.json().get("resourceType") == "OperationOutcome"
    except ValueError:
        return False


def without(keys_: set[str] | list[str], types: set[str]) -> set[str]:
    return {k for k in keys_ if k.split("/")[0] not in types}


@dataclass
class View:
    """What one role may see, by the oracle, over the world and the stored Provenances."""

    w: World
    role: str
    prov: dict[str, Rec]

    def rec(self, k: str) -> Rec | None:
        return self.w.recs.get(k) or self.prov.get(k)

    def sees(self, k: str) -> bool:
        r = self.rec(k)
        return r is not None and not r.deleted and self.w.sees(self.role, r)

    def all(self, rtype: str) -> set[str]:
        pool = {**self.w.recs, **self.prov}
        return {
            k
            for k, r in pool.items()
            if r.rtype == rtype and not r.deleted and self.w.sees(self.role, r)
        }

    def history(self, rtype: str | None = None) -> set[tuple[str, int]]:
        """(key, version) of every version the role may see in histories (deleted resources
        included, when it still sees them)."""
        pool = {**self.w.recs, **self.prov}
        return {
            (k, n)
            for k, r in pool.items()
            if (rtype is None or r.rtype == rtype) and self.w.sees(self.role, r)
            for n in range(1, r.versions + 1)
        }

    def everything(self) -> set[str]:
        pool = {**self.w.recs, **self.prov}
        return {k for k, r in pool.items() if not r.deleted and self.w.sees(self.role, r)}

    def refs(self, k: str, path: str) -> set[str]:
        r = self.rec(k)
        return {norm(x) for x in refs_at(r.content, path)} if r else set()

    def family(self, k: str) -> str:
        r = self.rec(k)
        return r.content["name"][0].get("family", "") if r else ""


async def view(w: World, role: str) -> View:
    return View(w, role, await w.provenances())


# --- the world as built ----------------------------------------------------------------------
async def test_world_residents(world: World):
    """The oracle picks the residents the world was built for (guards the expectations)."""
    for role, expected in BASE_RESIDENTS.items():
        if role == "sandbox":
            continue
        got = world.residents(role) or set()
        assert got == expected, f"{role}: oracle residents {got}, built for {expected}"


async def test_sandbox_writes_its_own_patient(world: World):
    """The sandbox sees only its own data, so it must be able to make some: PUT Patient/sb-p1
    by the sandbox itself (sandbox writes clinical types; its `own` rule covers what it
    wrote)."""
    status, text = world.notes["sandbox_put"]
    assert status == 201, f"sandbox PUT Patient/sb-p1 → {status}: {text}"


CONSENT_CASES = [
    # (case, role, Patient, visible?)
    ("actor-denies-hospital", "hospital", "p1", False),  # referred to H, Consent denies H
    ("purpose-denies-platform", "platform", "p6", False),  # under 4101, denies HOPERAT
    ("inactive-consent-ignored", "pc-b", "p2", True),  # denies B, but inactive
    ("actor-denial-only-for-that-actor", "pc-a", "p1", True),
    ("actor-denial-only-for-that-actor-platform", "platform", "p1", True),
]


@pytest.mark.parametrize("case", CONSENT_CASES, ids=[c[0] for c in CONSENT_CASES])
async def test_consent_overrides_policy(world: World, case):
    """A resident's active Consent denying an organisation (provision.actor) or a purpose of
    use (provision.purpose) takes the resident out of the default policy's reach."""
    name, role, pid, visible = case
    r = await world.call(role, "GET", f"Patient/{pid}")
    assert r.status_code == (200 if visible else 404), f"{name}: GET Patient/{pid} as {role}"
    r = await world.call(role, "GET", f"Observation?subject=Patient/{pid}")
    got = keys(r.json().get("entry", []))
    assert bool(got) == visible, f"{name}: {role} finds {got}"


# --- read, vread, history ----------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
async def test_read(world: World, role: str):
    v = await view(world, role)
    sample = await world.call("auditor", "GET", "AuditEvent?_count=3")
    targets = {k: r for k, r in {**world.recs, **v.prov}.items() if not r.deleted}
    targets.update({key_of(e["resource"]): Rec(e["resource"]) for e in sample.json()["entry"]})
    wrong = []
    for k, rec in sorted(targets.items()):
        r = await world.call(role, "GET", k)
        allowed = world.sees(role, rec)
        if allowed and (r.status_code != 200 or key_of(r.json()) != k):
            wrong.append(f"GET {k}: {r.status_code}, expected 200")
        if not allowed and (r.status_code != 404 or not is_outcome(r)):
            wrong.append(f"GET {k}: {r.status_code} {r.text[:120]}, expected 404 OperationOutcome")
    assert not wrong, f"{role}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_read_denied_looks_absent(world: World, role: str):
    """A forbidden resource's 404 is the 404 of an id never stored (same codes, same text
    but for the id), and carries nothing of the resource."""
    v = await view(world, role)
    hidden = sorted(k for k in world.current("Patient") if not v.sees(k))
    assert hidden, "the world hides some Patient from every non-admin role"
    absent = await world.call(role, "GET", "Patient/never-stored-x")
    assert absent.status_code == 404 and is_outcome(absent)
    shape = json.dumps(absent.json()).replace("never-stored-x", "ID")
    for k in hidden:
        r = await world.call(role, "GET", k)
        pid = k.split("/")[1]
        assert r.status_code == 404, f"GET {k}: {r.status_code}"
        assert json.dumps(r.json()).replace(pid, "ID") == shape, f"GET {k}: {r.text}"
        assert NAMES.get(pid, "\0") not in r.text


@pytest.mark.parametrize("role", ROLES)
async def test_vread(world: World, role: str):
    v = await view(world, role)
    wrong = []
    for k, rec in sorted({**world.recs, **v.prov}.items()):
        if rec.deleted:
            continue
        for version in range(1, rec.versions + 1):
            r = await world.call(role, "GET", f"{k}/_history/{version}")
            want = 200 if v.sees(k) else 404
            if r.status_code != want or (want == 404 and not is_outcome(r)):
                wrong.append(f"GET {k}/_history/{version}: {r.status_code}, expected {want}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


def history_keys(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    out = []
    for e in entries:
        k = norm(e["fullUrl"])
        version = int(e["response"]["etag"].split('"')[1])
        out.append((k, version))
    return out


@pytest.mark.parametrize("role", ROLES)
async def test_history_instance(world: World, role: str):
    v = await view(world, role)
    wrong = []
    for k, rec in sorted({**world.recs, **v.prov}.items()):
        if rec.deleted:
            continue
        r = await world.call(role, "GET", f"{k}/_history")
        if not v.sees(k):
            if r.status_code != 404 or not is_outcome(r):
                wrong.append(f"GET {k}/_history: {r.status_code}, expected 404")
            continue
        if r.status_code != 200:
            wrong.append(f"GET {k}/_history: {r.status_code}, expected 200")
            continue
        got = sorted(history_keys(r.json().get("entry", [])))
        want = [(k, n) for n in range(1, rec.versions + 1)]
        if got != want or r.json().get("total") != len(want):
            wrong.append(f"GET {k}/_history: {got} total {r.json().get('total')}, expected {want}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES)
async def test_history_type(world: World, role: str):
    v = await view(world, role)
    wrong = []
    for rtype in [*TYPES, "Provenance"]:
        entries, total = await world.fetch_all(role, f"{rtype}/_history?_count=1000")
        got = history_keys(entries)
        want = v.history(rtype)
        leaked, missing = sorted(set(got) - want), sorted(want - set(got))
        if leaked or missing or total != len(got):
            wrong.append(f"{rtype}/_history: leaked {leaked}, missing {missing}, total {total}")
    r = await world.call(role, "GET", "AuditEvent/_history?_count=5")
    audit = r.json()
    if role != "admin" and (audit.get("entry") or audit.get("total")):
        wrong.append(f"AuditEvent/_history: {audit.get('total')} versions")
    assert not wrong, f"{role}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES)
async def test_history_system(world: World, role: str):
    v = await view(world, role)
    entries, total = await world.fetch_all(role, "_history?_count=1000")
    got = history_keys(entries)
    want = {(k, n) for k, n in v.history() if not k.startswith("AuditEvent/")}
    got_here = {(k, n) for k, n in got if not k.startswith("AuditEvent/")}
    leaked, missing = sorted(got_here - want), sorted(want - got_here)
    assert not leaked and not missing, f"{role} /_history: leaked {leaked}, missing {missing}"
    if role != "admin":
        assert len(got) == len(got_here), f"{role} /_history shows AuditEvents"
        assert total == len(got), f"{role} /_history total {total} for {len(got)} versions"


# --- search ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
async def test_search_type(world: World, role: str):
    v = await view(world, role)
    wrong = []
    # the admin's view of the audit trail grows while it pages (tests/auth/test_audit.py)
    for rtype in [*TYPES, "Provenance", *(["AuditEvent"] if role != "admin" else [])]:
        entries, total = await world.fetch_all(role, f"{rtype}?_count=1000")
        got = keys(entries)
        want = v.all(rtype)
        leaked, missing = sorted(set(got) - want), sorted(want - set(got))
        if leaked or missing or total != len(got):
            wrong.append(f"GET {rtype}: leaked {leaked}, missing {missing}, total {total}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES)
async def test_search_type_post(world: World, role: str):
    """POST [type]/_search (a form) sees what GET sees."""
    v = await view(world, role)
    r = await world.call(
        role,
        "POST",
        "Patient/_search",
        content=b"name=Shared&_count=1000",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    check(v.all("Patient"), keys(r.json().get("entry", [])), f"{role} POST Patient/_search")
    assert r.json().get("total") == len(v.all("Patient"))


SYSTEM_TYPES = ["Patient", "Observation", "Condition", "CarePlan", "Consent", "Task", "Coverage"]


@pytest.mark.parametrize("role", ROLES)
async def test_search_system_with_type(world: World, role: str):
    v = await view(world, role)
    entries, total = await world.fetch_all(role, f"?_type={','.join(SYSTEM_TYPES)}&_count=1000")
    want = set().union(*(v.all(t) for t in SYSTEM_TYPES))
    check(want, keys(entries), f"{role} GET ?_type=…")
    assert total == len(want), f"{role} GET ?_type=…: total {total}, expected {len(want)}"


@pytest.mark.parametrize("role", ROLES)
async def test_search_system_all(world: World, role: str):
    v = await view(world, role)
    entries, total = await world.fetch_all(role, "?_count=1000")
    got = keys(entries)
    if role == "admin":
        check(without(v.everything(), {"AuditEvent"}), list(without(got, {"AuditEvent"})), "GET ?")
        return
    check(v.everything(), got, f"{role} GET ? (every type)")
    assert total == len(got), f"{role} GET ?: total {total} for {len(got)} matches"


@pytest.mark.parametrize("role", ROLES)
async def test_total_and_paging(world: World, role: str):
    """Bundle.total counts only what the client may see, whichever way it is counted, and
    paging one by one returns exactly the visible set."""
    v = await view(world, role)
    obs, pats = v.all("Observation"), v.all("Patient")
    wrong = []
    for url, want in [
        ("Observation?_total=accurate&_count=1", len(obs)),
        ("Observation?code=8867-4&_total=accurate&_count=1", len(obs)),
        ("Patient?_summary=count", len(pats)),
        ("Patient?name=Shared&_summary=count", len(pats)),
        ("Observation?subject.name=Shared&_total=accurate&_count=1", len(chain_shared(v))),
        ("?_type=Patient,Observation&_total=accurate&_count=1", len(obs) + len(pats)),
    ]:
        r = await world.call(role, "GET", url)
        total = r.json().get("total") if r.status_code == 200 else r.status_code
        if total != want:
            wrong.append(f"GET {url}: total {total}, expected {want}")
    assert not wrong, f"{role}: " + "; ".join(wrong)
    for url in ["Observation?_count=2", "Observation?code=8867-4&_count=2", "Patient?_count=1"]:
        entries, _ = await world.fetch_all(role, url)
        want_set = obs if url.startswith("Observation") else pats
        check(want_set, keys(entries), f"{role} paging {url}")


# --- includes, chains, _has --------------------------------------------------------------------
def chain_shared(v: View) -> set[str]:
    return {o for o in v.all("Observation") if any(v.sees(s) for s in v.refs(o, "subject"))}


def _subjects_named(v: View, family: str, path: str = "subject") -> set[str]:
    return {
        o
        for o in v.all("Observation")
        if any(v.sees(s) and v.family(s) == family for s in v.refs(o, path))
    }


def _include(v: View, matches: set[str], path: str) -> set[str]:
    return matches | {t for m in matches for t in v.refs(m, path) if v.sees(t)}


def _revinclude(v: View, matches: set[str], rtype: str, path: str) -> set[str]:
    return matches | {s for s in v.all(rtype) if v.refs(s, path) & matches}


def _ids(v: View, *ks: str) -> set[str]:
    return {k for k in ks if v.sees(k)}


def _patients_with(v: View, rtype: str, path: str, pred: Callable[[str], bool]) -> set[str]:
    return {
        p for p in v.all("Patient") if any(p in v.refs(s, path) and pred(s) for s in v.all(rtype))
    }


def _contract_plans(v: View) -> set[str]:
    return {
        c
        for c in v.all("CarePlan")
        if any(
            cd.get("code") == "family-doctor-contract"
            for cat in v.rec(c).content.get("category", [])  # type: ignore[union-attr]
            for cd in cat.get("coding", [])
        )
    }


CONTRACTS = "category=https://fhir.jtys.cn/CodeSystem/family-doctor-category|family-doctor-contract"

# (name, query, expected(view) → 'Type/id' of matches and included resources)
QUERY_CASES: list[tuple[str, str, Callable[[View], set[str]]]] = [
    # _include of forbidden targets
    (
        "include-subject",
        "Observation?_include=Observation:subject&_count=1000",
        lambda v: _include(v, v.all("Observation"), "subject"),
    ),
    (
        "include-performer-p2",
        "Observation?_id=obs-p3-perf&_include=Observation:performer",
        lambda v: _include(v, _ids(v, "Observation/obs-p3-perf"), "performer"),
    ),
    (
        "include-has-member-obs-p2",
        "Observation?_id=obs-p1-member&_include=Observation:has-member",
        lambda v: _include(v, _ids(v, "Observation/obs-p1-member"), "hasMember"),
    ),
    (
        "include-contract-team-subject",
        f"CarePlan?{CONTRACTS}&_include=CarePlan:care-team&_include=CarePlan:subject",
        lambda v: _include(
            v, _include(v, _contract_plans(v), "careTeam"), "subject"
        ),  # includes from the matches only
    ),
    (
        "include-wildcard",
        "Observation?_id=obs-p3-perf,obs-p1-member&_include=*",
        lambda v: {
            t
            for m in _ids(v, "Observation/obs-p3-perf", "Observation/obs-p1-member")
            for t in v.refs(m, "subject")
            | v.refs(m, "performer")
            | v.refs(m, "hasMember")
            | v.refs(m, "encounter")
            | {m}
            if v.sees(t)
        },
    ),
    # _revinclude of forbidden sources
    (
        "revinclude-observation-subject",
        "Patient?_revinclude=Observation:subject&_count=1000",
        lambda v: _revinclude(v, v.all("Patient"), "Observation", "subject"),
    ),
    (
        "revinclude-consent-actor-h",
        "Organization?_id=org-h&_revinclude=Consent:actor",
        lambda v: _revinclude(
            v, _ids(v, "Organization/org-h"), "Consent", "provision.actor.reference"
        ),
    ),
    (
        "revinclude-task-owner-h",
        "Organization?_id=org-h&_revinclude=Task:owner",
        lambda v: _revinclude(v, _ids(v, "Organization/org-h"), "Task", "owner"),
    ),
    (
        "revinclude-provenance",
        "Patient?_revinclude=Provenance:target&_count=1000",
        lambda v: _revinclude(v, v.all("Patient"), "Provenance", "target"),
    ),
    (
        "revinclude-contract-of-team-a",
        "CareTeam?_id=team-a&_revinclude=CarePlan:care-team",
        lambda v: _revinclude(v, _ids(v, "CareTeam/team-a"), "CarePlan", "careTeam"),
    ),
    # :iterate
    (
        "iterate-has-member",
        "Patient?_id=p1&_revinclude=Observation:subject&_include:iterate=Observation:has-member",
        lambda v: _include(
            v, _revinclude(v, _ids(v, "Patient/p1"), "Observation", "subject"), "hasMember"
        ),
    ),
    (
        "iterate-performer-subject",
        "Patient?_id=p2&_revinclude:iterate=Observation:performer"
        "&_include:iterate=Observation:subject",
        lambda v: _include(
            v, _revinclude(v, _ids(v, "Patient/p2"), "Observation", "performer"), "subject"
        ),
    ),
    (
        "iterate-revinclude-member",
        "Patient?_id=p2&_revinclude=Observation:subject&_revinclude:iterate=Observation:has-member",
        lambda v: (
            lambda first: (
                first
                | {
                    s
                    for s in v.all("Observation")
                    if v.refs(s, "hasMember") & (first - {"Patient/p2"})
                }
            )
        )(_revinclude(v, _ids(v, "Patient/p2"), "Observation", "subject")),
    ),
    # chains through forbidden resources
    ("chain-subject-shared", "Observation?subject.name=Shared&_count=1000", chain_shared),
    (
        "chain-subject-p3",
        "Observation?subject.name=Chenguang",
        lambda v: _subjects_named(v, "Chenguang"),
    ),
    (
        "chain-performer-p2",
        "Observation?performer:Patient.name=Baoshan",
        lambda v: _subjects_named(v, "Baoshan", "performer"),
    ),
    (
        "chain-subject-division",
        "Observation?subject:Patient.division=4101",
        lambda v: {
            o
            for o in v.all("Observation")
            if any(
                v.sees(s) and any(d.startswith("4101") for d in divisions_of(v.rec(s).content))
                for s in v.refs(o, "subject")
                if s.startswith("Patient/")
            )
        },
    ),
    (
        "chain-contract-team-org",
        "CarePlan?care-team.managing-organization=Organization/org-a",
        lambda v: (
            {c for c in v.all("CarePlan") if "CareTeam/team-a" in v.refs(c, "careTeam")}
            if v.sees("CareTeam/team-a")
            else set()
        ),
    ),
    (
        "chain-consent-patient",
        "Consent?patient.name=Anxin",
        lambda v: (
            {c for c in v.all("Consent") if "Patient/p1" in v.refs(c, "patient")}
            if v.sees("Patient/p1")
            else set()
        ),
    ),
    # _has through forbidden sources
    (
        "has-observation",
        "Patient?_has:Observation:subject:code=8867-4&_count=1000",
        lambda v: _patients_with(v, "Observation", "subject", lambda s: True),
    ),
    (
        "has-observation-performer",
        "Patient?_has:Observation:performer:_id=obs-p3-perf",
        lambda v: _patients_with(
            v, "Observation", "performer", lambda s: s == "Observation/obs-p3-perf"
        ),
    ),
    (
        "has-task-owner-h",
        "Patient?_has:Task:patient:owner=Organization/org-h",
        lambda v: _patients_with(v, "Task", "for", lambda s: True),
    ),
    (
        "has-consent-actor-h",
        "Patient?_has:Consent:patient:actor=Organization/org-h",
        lambda v: _patients_with(
            v,
            "Consent",
            "patient",
            lambda s: "Organization/org-h" in v.refs(s, "provision.actor.reference"),
        ),
    ),
    (
        "has-contract-team-b",
        "Patient?_has:CarePlan:subject:care-team=CareTeam/team-b",
        lambda v: _patients_with(
            v, "CarePlan", "subject", lambda s: "CareTeam/team-b" in v.refs(s, "careTeam")
        ),
    ),
    (
        "has-consent-naming-org",
        "Organization?_has:Consent:actor:patient=Patient/p1",
        lambda v: (
            _ids(v, "Organization/org-h")
            if any(
                "Patient/p1" in v.refs(c, "patient")
                and "Organization/org-h" in v.refs(c, "provision.actor.reference")
                for c in v.all("Consent")
            )
            else set()
        ),
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
async def test_query(world: World, case, role: str):
    name, url, expected = case
    v = await view(world, role)
    entries, total = await world.fetch_all(role, url)
    want = expected(v)
    check(want, keys(entries), f"{role} GET {url}")
    matches = keys(entries, "match")
    assert total in (None, len(matches)), f"{role} GET {url}: total {total} for {len(matches)}"


# --- $everything, $validate ------------------------------------------------------------------
PATIENTS = [f"Patient/{p}" for p in NAMES]


@pytest.mark.parametrize("role", ROLES)
async def test_everything_instance(world: World, role: str):
    v = await view(world, role)
    wrong = []
    for p in PATIENTS:
        r = await world.call(role, "GET", f"{p}/$everything?_count=1000")
        if not v.sees(p):
            if r.status_code != 404 or not is_outcome(r):
                wrong.append(f"{p}/$everything: {r.status_code}, expected 404")
            continue
        admin_entries, _ = await world.fetch_all("auditor", f"{p}/$everything?_count=1000")
        full = without(keys(admin_entries), {"AuditEvent"})
        want = {k for k in full if v.sees(k)}
        got = keys(r.json().get("entry", [])) if r.status_code == 200 else []
        if role == "admin":
            got = list(without(got, {"AuditEvent"}))
        leaked, missing = sorted(set(got) - want), sorted(want - set(got))
        if r.status_code != 200 or leaked or missing:
            wrong.append(f"{p}/$everything {r.status_code}: leaked {leaked}, missing {missing}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES)
async def test_everything_type(world: World, role: str):
    """Patient/$everything: the records of every Patient the client may see, nothing else it
    may not see."""
    v = await view(world, role)
    entries, _ = await world.fetch_all(role, "Patient/$everything?_count=1000")
    got = set(keys(entries))
    if role == "admin":
        got = without(got, {"AuditEvent"})
    leaked = sorted(k for k in got if not v.sees(k))
    assert not leaked, f"{role} Patient/$everything leaked {leaked}"
    want: set[str] = set()
    for p in sorted(v.all("Patient")):
        admin_entries, _ = await world.fetch_all("auditor", f"{p}/$everything?_count=1000")
        want |= {k for k in keys(admin_entries) if v.sees(k) and not k.startswith("AuditEvent")}
    missing = sorted(want - got)
    extra = sorted(got - want)
    assert not missing and not extra, (
        f"{role} Patient/$everything: missing {missing}; beyond its Patients' records {extra}"
    )


@pytest.mark.parametrize("role", ROLES)
async def test_validate_instance(world: World, role: str):
    """[type]/[id]/$validate reads the stored resource: a forbidden one is a 404, whether
    asked by GET or by POST of a Parameters without a resource (mode=delete)."""
    v = await view(world, role)
    params = {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]}
    wrong = []
    for k in sorted(world.current()):
        want = 200 if v.sees(k) else 404
        r = await world.call(role, "GET", f"{k}/$validate")
        if r.status_code != want or not is_outcome(r):
            wrong.append(f"GET {k}/$validate: {r.status_code}, expected {want}")
        r = await world.call(role, "POST", f"{k}/$validate", json_body=params)
        if r.status_code != want or not is_outcome(r):
            wrong.append(f"POST {k}/$validate (mode=delete): {r.status_code}, expected {want}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


# --- batch and transaction ---------------------------------------------------------------------
READ_KEYS = [
    *PATIENTS,
    "Observation/obs-p1",
    "Observation/obs-p2",
    "Observation/obs-p3-perf",
    "CarePlan/c1",
    "CarePlan/c3",
    "CarePlan/cp-p1-plain",
    "CareTeam/team-a",
    "Consent/consent-p1",
    "Task/task-p4",
    "Coverage/cov-p1",
    "Organization/org-h",
    "ChargeItemDefinition/cid-1",
]


def entry_status(e: dict[str, Any]) -> int:
    return int(e["response"]["status"].split()[0])


@pytest.mark.parametrize("role", ROLES)
async def test_batch_reads(world: World, role: str):
    v = await view(world, role)
    urls = [
        *READ_KEYS,
        *(f"{k}/_history" for k in READ_KEYS[:7]),
        "Observation?subject.name=Chenguang",
        "Patient?_has:Consent:patient:actor=Organization/org-h",
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
    }
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code == 200, r.text
    out = r.json()["entry"]
    wrong = []
    for u, e in zip(urls, out, strict=True):
        status = entry_status(e)
        res = e.get("resource") or {}
        if "?" in u:
            expected = {c[1]: c[2] for c in QUERY_CASES}[u]
            got = keys(res.get("entry", []))
            if status != 200 or set(got) != expected(v):
                wrong.append(f"GET {u}: {status} {sorted(got)}, expected {sorted(expected(v))}")
            continue
        k = norm(u)
        want = 200 if v.sees(k) else 404
        if status != want:
            wrong.append(f"GET {u}: {status}, expected {want}")
        elif want == 404 and (res or "outcome" not in e["response"]):
            wrong.append(f"GET {u}: 404 entry carries {sorted(res)} / no outcome")
    assert not wrong, f"{role}: " + "; ".join(wrong)


def own_patient(role: str) -> str:
    """A resident this role may see (or, for roles seeing none, any)."""
    return {"pc-b": "p2", "hospital": "p4", "platform": "p3"}.get(role, "p1")


def forbidden_patient(role: str) -> str:
    """A resident this role may neither see nor write for."""
    return "p1" if role == "pc-b" else "p2"


@pytest.mark.parametrize("role", ROLES)
async def test_batch_writes_denied(world: World, role: str):
    """Write entries of forbidden kinds answer 403 each, with an OperationOutcome; nothing is
    written."""
    pid = forbidden_patient(role)
    audit = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True, "who": {"display": "forger"}}],
        "source": {"observer": {"display": "forger"}},
    }
    entries = [{"request": {"method": "POST", "url": "AuditEvent"}, "resource": audit}]
    if role != "admin":
        marker = f"batch-{role}"
        obs = observation("x", pid, identifier=[{"system": "urn:leak", "value": marker}])
        obs.pop("id")
        target = f"Observation/obs-{pid}"
        updated = copy.deepcopy(world.recs[target].content)
        updated.pop("meta", None)
        updated["status"] = "amended"
        entries += [
            {"request": {"method": "POST", "url": "Observation"}, "resource": obs},
            {"request": {"method": "PUT", "url": target}, "resource": updated},
            {"request": {"method": "DELETE", "url": "Observation/obs-p5"}},
            {"request": {"method": "DELETE", "url": f"Observation?subject=Patient/{pid}"}},
        ]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code == 200, r.text
    got = [(entry_status(e), "outcome" in e["response"]) for e in r.json()["entry"]]
    assert got == [(403, True)] * len(entries), f"{role} batch writes: {got}"
    check_unchanged = await world.call("auditor", "GET", f"Observation?subject=Patient/{pid}")
    want = {
        k
        for k, rec in world.current("Observation").items()
        if f"Patient/{pid}" in refs_at(rec.content, "subject")
    }
    check(want, keys(check_unchanged.json().get("entry", [])), f"after {role}'s batch")
    for k in want:
        r = await world.call("auditor", "GET", k)
        assert r.json()["meta"]["versionId"] == str(world.recs[k].versions), f"{k} changed"


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_transaction_read_forbidden(world: World, role: str):
    """A transaction reading a forbidden resource fails as for an absent one (404), and
    returns nothing of it or of the other entries."""
    hidden = "Patient/p5"  # seen by admin only
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": "Organization/org-a"}},
            {"request": {"method": "GET", "url": hidden}},
        ],
    }
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code in (404, 200), r.text
    if r.status_code == 200:
        statuses = [entry_status(e) for e in r.json()["entry"]]
        assert statuses[1] == 404, f"{role}: transaction GET {hidden} → {statuses}"
    else:
        assert is_outcome(r)
    assert "Enhui" not in r.text and '"p5"' not in r.text


@pytest.mark.parametrize("role", ROLES)
async def test_transaction_write_forbidden(world: World, role: str):
    """A transaction with a forbidden write is a 403 and writes nothing, not even its allowed
    entries."""
    marker = f"tx-{role}"
    allowed = observation(
        "x", own_patient(role), identifier=[{"system": "urn:leak", "value": marker}]
    )
    allowed.pop("id")
    forbidden = observation("y", forbidden_patient(role))
    forbidden.pop("id")
    entries = [
        {
            "fullUrl": "urn:uuid:8c9a3c52-1111-4a4e-9d1e-000000000001",
            "request": {"method": "POST", "url": "Observation"},
            "resource": allowed,
        },
        {
            "fullUrl": "urn:uuid:8c9a3c52-1111-4a4e-9d1e-000000000002",
            "request": {"method": "POST", "url": "Observation"},
            "resource": forbidden,
        },
    ]
    if role == "admin":
        entries[1] = {
            "fullUrl": "urn:uuid:8c9a3c52-1111-4a4e-9d1e-000000000002",
            "request": {"method": "POST", "url": "AuditEvent"},
            "resource": {
                "resourceType": "AuditEvent",
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                    "code": "rest",
                },
                "recorded": "2026-01-01T00:00:00Z",
                "agent": [{"requestor": True, "who": {"display": "forger"}}],
                "source": {"observer": {"display": "forger"}},
            },
        }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code == 403 and is_outcome(r), f"{role}: {r.status_code} {r.text[:300]}"
    found = await world.call("auditor", "GET", f"Observation?identifier=urn:leak|{marker}")
    assert found.json().get("total") == 0, f"{role}: the transaction's allowed entry was written"


# --- conditional interactions ----------------------------------------------------------------
def hidden_patient(role: str) -> str:
    return "Patient/p1" if role == "pc-b" else "Patient/p2"


async def _still_there(world: World, k: str) -> None:
    r = await world.call("auditor", "GET", k)
    assert r.status_code == 200, f"{k} is gone: {r.status_code}"
    assert r.json()["meta"]["versionId"] == str(world.recs[k].versions), f"{k} was changed"


def _leaks(r: Any, k: str) -> list[str]:
    pid = k.split("/")[1]
    out = [s for s in (f'"{pid}"', f"/{pid}", NAMES[pid]) if s in r.text]
    out += [h for h in ("Location", "ETag", "Content-Location") if h in r.headers]
    return out


@pytest.mark.parametrize("role", ROLES)
async def test_conditional_create_matching_forbidden(world: World, role: str):
    """If-None-Exist matching a Patient the client may not see: 403, nothing of the match
    revealed and no duplicate created; one it may see: 200 with it (admin, B for p2)."""
    k = "Patient/p2"
    v = await view(world, role)
    body = patient("x", NAMES["p2"], None)
    body.pop("id")
    for how in ("header", "query"):
        if how == "header":
            r = await world.call(
                role,
                "POST",
                "Patient",
                json_body=body,
                headers={"If-None-Exist": f"family={NAMES['p2']}"},
            )
        else:
            r = await world.call(role, "POST", f"Patient?family={NAMES['p2']}", json_body=body)
        if v.sees(k):
            assert r.status_code == 200 and key_of(r.json()) == k, f"{role} {how}: {r.text}"
            continue
        assert r.status_code == 403 and is_outcome(r), f"{role} {how}: {r.status_code} {r.text}"
        assert not _leaks(r, k), f"{role} {how}: the response reveals {_leaks(r, k)}: {r.text}"
    found = await world.call("auditor", "GET", f"Patient?family={NAMES['p2']}")
    assert found.json().get("total") == 1, f"{role}: a duplicate Patient was created"


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_conditional_update_matching_forbidden(world: World, role: str):
    k = hidden_patient(role)
    pid = k.split("/")[1]
    body = copy.deepcopy(world.recs[k].content)
    body.pop("meta", None)
    body.pop("id", None)
    body["active"] = False
    r = await world.call(role, "PUT", f"Patient?family={NAMES[pid]}", json_body=body)
    assert r.status_code == 403 and is_outcome(r), f"{role}: {r.status_code} {r.text}"
    assert not _leaks(r, k), f"{role}: reveals {_leaks(r, k)}"
    await _still_there(world, k)


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_conditional_patch_matching_forbidden(world: World, role: str):
    k = hidden_patient(role)
    pid = k.split("/")[1]
    patch = [{"op": "replace", "path": "/active", "value": False}]
    r = await world.call(
        role,
        "PATCH",
        f"Patient?family={NAMES[pid]}",
        content=json.dumps(patch).encode(),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403 and is_outcome(r), f"{role}: {r.status_code} {r.text}"
    assert not _leaks(r, k), f"{role}: reveals {_leaks(r, k)}"
    await _still_there(world, k)


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_conditional_delete_matching_forbidden(world: World, role: str):
    k = hidden_patient(role)
    pid = k.split("/")[1]
    r = await world.call(role, "DELETE", f"Patient?family={NAMES[pid]}")
    assert r.status_code == 403 and is_outcome(r), f"{role}: {r.status_code} {r.text}"
    assert not _leaks(r, k), f"{role}: reveals {_leaks(r, k)}"
    await _still_there(world, k)


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_conditional_create_in_transaction_matching_forbidden(world: World, role: str):
    k = hidden_patient(role)
    pid = k.split("/")[1]
    body = patient("x", NAMES[pid], None)
    body.pop("id")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8c9a3c52-2222-4a4e-9d1e-000000000001",
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"family={NAMES[pid]}",
                },
                "resource": body,
            }
        ],
    }
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code == 403 and is_outcome(r), f"{role}: {r.status_code} {r.text}"
    assert not _leaks(r, k), f"{role}: reveals {_leaks(r, k)}"
    found = await world.call("auditor", "GET", f"Patient?family={NAMES[pid]}")
    assert found.json().get("total") == 1


@pytest.mark.parametrize("role", NON_ADMIN)
async def test_conditional_reference_to_forbidden(world: World, role: str):
    """A transaction's conditional reference must not resolve to a resource the client may
    not see (it would link to it, and the response would name it)."""
    k = hidden_patient(role)
    pid = k.split("/")[1]
    obs = observation(
        "x", own_patient(role), performer=[{"reference": f"Patient?family={NAMES[pid]}"}]
    )
    obs.pop("id")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8c9a3c52-3333-4a4e-9d1e-000000000001",
                "request": {"method": "POST", "url": "Observation"},
                "resource": obs,
            }
        ],
    }
    r = await world.call(role, "POST", "", json_body=bundle)
    assert r.status_code in (403, 404) and is_outcome(r), f"{role}: {r.status_code} {r.text}"
    assert not _leaks(r, k), f"{role}: reveals {_leaks(r, k)}"


# --- writes ------------------------------------------------------------------------------------
def _obs(pid: str, marker: str) -> dict[str, Any]:
    o = observation("x", pid, identifier=[{"system": "urn:leak", "value": marker}])
    o.pop("id")
    return o


def _audit_event() -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True, "who": {"display": "forger"}}],
        "source": {"observer": {"display": "forger"}},
    }


def _coverage() -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/org-i"}],
    }


def _updated(world: World, k: str) -> dict[str, Any]:
    doc = copy.deepcopy(world.recs[k].content)
    doc.pop("meta", None)
    doc["status"] = "amended"
    return doc


# (case, role, method, url, body): every one must answer 403 with an OperationOutcome and
# leave the store unchanged
DENIED_WRITES: list[tuple[str, str, str, str, Callable[[World], Any]]] = [
    ("a-creates-obs-for-p2", "pc-a", "POST", "Observation", lambda w: _obs("p2", "d1")),
    (
        "a-updates-obs-p2",
        "pc-a",
        "PUT",
        "Observation/obs-p2",
        lambda w: _updated(w, "Observation/obs-p2"),
    ),
    ("a-deletes-obs-p2", "pc-a", "DELETE", "Observation/obs-p2", lambda w: None),
    (
        "a-moves-obs-p1-to-p2",
        "pc-a",
        "PUT",
        "Observation/obs-p1",
        lambda w: {**_updated(w, "Observation/obs-p1"), "subject": {"reference": "Patient/p2"}},
    ),
    (
        "a-updates-patient-p2",
        "pc-a",
        "PUT",
        "Patient/p2",
        lambda w: {**copy.deepcopy(w.recs["Patient/p2"].content), "meta": None, "active": False},
    ),
    (
        "a-updates-coverage",
        "pc-a",
        "PUT",
        "Coverage/cov-p1",
        lambda w: {
            **copy.deepcopy(w.recs["Coverage/cov-p1"].content),
            "meta": None,
            "status": "cancelled",
        },
    ),
    ("b-deletes-contract-c1", "pc-b", "DELETE", "CarePlan/c1", lambda w: None),
    (
        "h-creates-obs-for-consent-denied-p1",
        "hospital",
        "POST",
        "Observation",
        lambda w: _obs("p1", "d2"),
    ),
    (
        "h-creates-obs-for-p5-closed-long-ago",
        "hospital",
        "POST",
        "Observation",
        lambda w: _obs("p5", "d3"),
    ),
    ("p-creates-obs-for-p1", "platform", "POST", "Observation", lambda w: _obs("p1", "d4")),
    ("insurer-creates-patient", "insurer", "POST", "Patient", lambda w: patient("x", "Ins", None)),
    (
        "insurer-w-creates-patient",
        "insurer-w",
        "POST",
        "Patient",
        lambda w: patient("x", "Ins", None),
    ),
    ("insurer-w-creates-obs", "insurer-w", "POST", "Observation", lambda w: _obs("p1", "d5")),
    ("sandbox-creates-obs-for-p1", "sandbox", "POST", "Observation", lambda w: _obs("p1", "d6")),
    *[
        (f"{r}-writes-auditevent", r, "POST", "AuditEvent", lambda w: _audit_event())
        for r in [*ROLES, "insurer-w"]
    ],
]


@pytest.mark.parametrize("case", DENIED_WRITES, ids=[c[0] for c in DENIED_WRITES])
async def test_denied_write(world: World, case):
    name, role, method, url, body = case
    doc = body(world)
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if v is not None}
        if method == "POST":
            doc.pop("id", None)
    before = await world.call("auditor", "GET", "Observation?_summary=count")
    r = await world.call(role, method, url, json_body=doc)
    assert r.status_code == 403 and is_outcome(r), f"{name}: {r.status_code} {r.text[:300]}"
    after = await world.call("auditor", "GET", "Observation?_summary=count")
    assert before.json()["total"] == after.json()["total"], f"{name}: an Observation was written"
    if "/" in url:
        await _still_there(world, url)


# (case, role, type, body): 201, and the writer finds the Provenance of its write
def _p1_with_phone(world: World) -> dict[str, Any]:
    doc = copy.deepcopy(world.recs["Patient/p1"].content)
    doc.pop("meta", None)
    doc["telecom"] = [{"system": "phone", "value": "13900000002"}]
    return doc


# (case, role, method, url, body): 201 (200 for an update), and the writer finds the Provenance
# of its write with _revinclude=Provenance:target
ALLOWED_WRITES: list[tuple[str, str, str, str, Callable[[World], dict[str, Any]]]] = [
    ("admin-creates-obs-for-p3", "admin", "POST", "Observation", lambda w: _obs("p3", "w1")),
    ("a-creates-obs-for-p1", "pc-a", "POST", "Observation", lambda w: _obs("p1", "w2")),
    ("a-updates-patient-p1", "pc-a", "PUT", "Patient/p1", _p1_with_phone),
    ("b-creates-obs-for-p2", "pc-b", "POST", "Observation", lambda w: _obs("p2", "w3")),
    ("h-creates-obs-for-p4", "hospital", "POST", "Observation", lambda w: _obs("p4", "w4")),
    ("insurer-w-creates-coverage", "insurer-w", "POST", "Coverage", lambda w: _coverage()),
    (
        "sandbox-creates-patient",
        "sandbox",
        "POST",
        "Patient",
        lambda w: patient("x", "Sandy", None),
    ),
]


@pytest.mark.parametrize("case", ALLOWED_WRITES, ids=[c[0] for c in ALLOWED_WRITES])
async def test_allowed_write_leaves_provenance(world: World, case):
    name, role, method, url, body = case
    doc = body(world)
    if method == "POST":
        doc.pop("id", None)
    r = await world.call(role, method, url, json_body=doc)
    want = 201 if method == "POST" else 200
    assert r.status_code == want, f"{name}: {r.status_code} {r.text[:300]}"
    written = r.json()
    world.remember(role, written, new=method == "POST")
    k = key_of(written)
    version = f"{k}/_history/{written['meta']['versionId']}"
    entries, _ = await world.fetch_all(
        role, f"{k.split('/')[0]}?_id={written['id']}&_revinclude=Provenance:target"
    )
    provs = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Provenance"]
    client_id = world.clients[role].client_id
    mine = [
        p
        for p in provs
        if any(t["reference"] == version for t in p.get("target", []))
        and any(
            a.get("who", {}).get("identifier", {}).get("value") == client_id
            and a.get("who", {}).get("reference") == CLIENTS[role][1]
            for a in p.get("agent", [])
        )
    ]
    assert keys(entries, "match") == [k], f"{name}: the writer does not find {k}: {entries}"
    assert len(mine) == 1, f"{name}: Provenances the writer finds for {version}: {provs}"


async def test_delete_leaves_provenance(world: World):
    """A delete is a write: it leaves a Provenance naming the deleted version."""
    doc = _obs("p3", "del")
    r = await world.call("admin", "POST", "Observation", json_body=doc)
    assert r.status_code == 201
    world.remember("admin", r.json(), new=True)
    k = key_of(r.json())
    r = await world.delete("admin", k)
    assert r.status_code == 204
    entries, _ = await world.fetch_all("auditor", f"Provenance?target={k}")
    targets = [t["reference"] for e in entries for t in e["resource"]["target"]]
    assert f"{k}/_history/2" in targets, f"Provenances of {k}: {targets}"


# --- no valid token --------------------------------------------------------------------------
UNAUTHENTICATED = [
    ("GET", "Patient/p1"),
    ("GET", "Patient"),
    ("GET", "?_type=Patient"),
    ("GET", "_history"),
    ("GET", "Patient/p1/_history/1"),
    ("GET", "Patient/p1/$everything"),
    ("GET", "Patient/p1/$validate"),
    ("POST", "Patient"),
    ("POST", ""),
    ("DELETE", "Patient?family=Anxin"),
]


@pytest.mark.parametrize("token", ["none", "garbage", "wrong-signature"])
@pytest.mark.parametrize(
    ("method", "url"), UNAUTHENTICATED, ids=[f"{m} {u}" for m, u in UNAUTHENTICATED]
)
async def test_no_valid_token(world: World, token: str, method: str, url: str):
    headers = {}
    if token == "garbage":
        headers["Authorization"] = "Bearer not-a-token"
    elif token == "wrong-signature":
        good = await world.token("admin")
        head, claims, sig = good.split(".")
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        payload["role"] = "admin"
        payload["organization"] = "Organization/org-x"
        forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
        headers["Authorization"] = f"Bearer {head}.{forged}.{sig}"
    body = None
    if method == "POST":
        body = patient("x", "Nobody", None) if url else {"resourceType": "Bundle", "type": "batch"}
        body.pop("id", None)
    r = await world.call(None, method, url, json_body=body, headers=headers)
    assert r.status_code == 401 and is_outcome(r), f"{method} {url}: {r.status_code} {r.text[:200]}"
    assert "Anxin" not in r.text


# --- a resident moving out of scope ----------------------------------------------------------
async def test_history_of_resident_moved_out_of_scope(world: World):
    """p8 contracted with A: A sees p8, its Observation, their histories. The contract ends
    (deleted by the admin): p8 and its record leave every path of A's."""
    await world.must_put(patient("p8", "Hexin", None))
    await world.must_put(observation("obs-p8", "p8"))
    await world.must_put(contract("c8", "p8", "team-a", "QY410102202690008"))
    moved = ["Patient/p8", "Observation/obs-p8"]
    for k in moved:
        r = await world.call("pc-a", "GET", f"{k}/_history")
        assert r.status_code == 200, f"before: A GET {k}/_history → {r.status_code}"
    r = await world.delete("admin", "CarePlan/c8")
    assert r.status_code == 204
    assert "p8" not in (world.residents("pc-a") or set())
    wrong = []
    for k in [*moved, "CarePlan/c8"]:
        for path in (k, f"{k}/_history", f"{k}/_history/1"):
            r = await world.call("pc-a", "GET", path)
            if r.status_code != 404:
                wrong.append(f"GET {path}: {r.status_code}")
    r = await world.call("pc-a", "GET", "Patient/p8/$everything")
    if r.status_code != 404:
        wrong.append(f"Patient/p8/$everything: {r.status_code}")
    for url in [
        "Patient/_history?_count=1000",
        "Observation/_history?_count=1000",
        "CarePlan/_history?_count=1000",
        "_history?_count=1000",
        "Observation?subject=Patient/p8",
        "Observation?subject.name=Hexin",
        "Patient?_has:Observation:subject:_id=obs-p8",
    ]:
        entries, total = await world.fetch_all("pc-a", url)
        found = [norm(e.get("fullUrl", "")) for e in entries]
        bad = sorted({f for f in found if f in (*moved, "CarePlan/c8")})
        if bad:
            wrong.append(f"GET {url} still shows {bad}")
    assert not wrong, "A after p8's contract ended: " + "; ".join(wrong)


# --- every request audited -------------------------------------------------------------------
async def test_every_request_audited(world: World):
    """Every request this module made (the auditor's aside) left exactly one AuditEvent: the
    client as agent, the request id, outcome 0 for success and 4 for a 4xx."""
    made = [x for x in world.log if x.client != "auditor"]
    by_request, unauthenticated = await world.audit_trail(
        {x.request_id for x in made if x.client != "-"}
    )
    wrong = []
    anonymous = 0
    for x in made:
        want = "0" if x.status < 400 else "4" if x.status < 500 else "8"
        if x.client == "-":
            anonymous += 1
            continue
        events = by_request.get(x.request_id, [])
        if len(events) != 1:
            wrong.append(f"{x.client} {x.method} {x.url} → {x.status}: {len(events)} AuditEvents")
            continue
        ev = events[0]
        who = [a.get("who", {}).get("identifier", {}).get("value") for a in ev.get("agent", [])]
        orgs = [a.get("who", {}).get("reference") for a in ev.get("agent", [])]
        if ev.get("outcome") != want or who != [x.client_id] or orgs != [CLIENTS[x.client][1]]:
            wrong.append(
                f"{x.client} {x.method} {x.url} → {x.status}: outcome {ev.get('outcome')} "
                f"(expected {want}), agents {who} {orgs}"
            )
    refused = [ev for ev in unauthenticated if ev.get("outcome") == "4"]
    if len(refused) != anonymous:
        wrong.append(f"{anonymous} requests without a valid token, {len(refused)} AuditEvents")
    assert not wrong, f"{len(wrong)} of {len(made)} requests: " + "; ".join(wrong[:40])
