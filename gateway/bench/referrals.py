"""`python -m gateway.bench --referrals`: complete up-referrals on PostgreSQL, 8 clients.

Setup: a Guangzhou community health centre with a three-rings team, residents under contract
with it, a hospital publishing an expert schedule (20% of its slots reserved for teams by the
Guangzhou pack). Each loop: the team posts the up-referral (the gateway adds the priorities
and creates its Task), the hospital accepts the Task, books a slot for it, marks the patient
arrived and completes the Task: six requests. Printed: loops per second, and the latency of
each step, booking included (p50 / p95).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
from rich.table import Table

from gateway.bench.clients import Connection, median_p95_ms, run_clients
from gateway.bench.server import gateway_process, throwaway_postgres

BASE = "https://fhir.jtys.cn"
HEADERS = {"content-type": "application/fhir+json"}
CATEGORY = f"{BASE}/CodeSystem/family-doctor-category"
STEPS = ("refer", "find task", "accept", "book", "arrive", "complete")


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"system": f"{BASE}/CodeSystem/{system}", "code": code}


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": f"{BASE}/StructureDefinition/{name}", **value}


def _create(conn: Connection, resource: dict[str, Any]) -> str:
    r = conn.request("POST", resource["resourceType"], orjson.dumps(resource), HEADERS)
    assert r.status == 201, r.body[:500]
    return f"{resource['resourceType']}/{orjson.loads(r.body)['id']}"


def _transaction(conn: Connection, resources: list[dict[str, Any]]) -> list[str]:
    entries = [
        {"resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
        for res in resources
    ]
    body = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    r = conn.request("POST", "", body, HEADERS)
    assert r.status == 200, r.body[:500]
    return [e["response"]["location"].split("/_history")[0] for e in orjson.loads(r.body)["entry"]]


def _organization(conn: Connection, name: str) -> str:
    division = _ext("cn-admin-division", valueCode="440104")
    return _create(
        conn, {"resourceType": "Organization", "name": name, "address": [{"extension": [division]}]}
    )


def _team(conn: Connection, org: str) -> tuple[str, str]:
    members = []
    for role, specialty in (("gp", "02"), ("nurse", None), ("public-health", "01")):
        body: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "organization": {"reference": org},
            "code": [{"coding": [_coding("team-role", role)]}],
        }
        if specialty:
            body["specialty"] = [{"coding": [_coding("clinical-specialty", specialty)]}]
        members.append((role, _create(conn, body)))
    ring = _ext("cn-team-ring", valueCoding=_coding("team-ring", "ring-1"))
    team = {
        "resourceType": "CareTeam",
        "extension": [_ext("cn-team-model", valueCoding=_coding("team-model", "three-rings"))],
        "identifier": [{"system": f"{BASE}/sid/team", "value": "GZ-BENCH-1"}],
        "status": "active",
        "category": [{"coding": [{"system": CATEGORY, "code": "family-doctor-team"}]}],
        "name": "三环团队",
        "participant": [
            {
                "extension": [ring, _ext("cn-first-responsible", valueBoolean=True)]
                if i == 0
                else [ring],
                "role": [{"coding": [_coding("team-role", role)]}],
                "member": {"reference": ref},
            }
            for i, (role, ref) in enumerate(members)
        ],
        "managingOrganization": [{"reference": org}],
    }
    return _create(conn, team), members[0][1]


def _residents(conn: Connection, n: int, team: str, doctor: str) -> list[str]:
    out: list[str] = []
    for start in range(0, n, 100):
        batch = range(start, min(n, start + 100))
        patients = _transaction(
            conn, [{"resourceType": "Patient", "name": [{"text": f"居民{i}"}]} for i in batch]
        )
        contracts = [
            {
                "resourceType": "CarePlan",
                "extension": [
                    _ext("cn-sign-type", valueCoding=_coding("sign-type", "new")),
                    _ext("cn-signing-channel", valueCoding=_coding("signing-channel", "on-site")),
                ],
                "identifier": [{"system": f"{BASE}/sid/contract", "value": f"QYB{i:07d}"}],
                "status": "active",
                "intent": "plan",
                "category": [{"coding": [{"system": CATEGORY, "code": "family-doctor-contract"}]}],
                "subject": {"reference": ref},
                "period": {"start": "2026-01-01", "end": "2026-12-31"},
                "careTeam": [{"reference": team}],
                "author": {"reference": doctor},
                "created": "2026-01-01T09:00:00+08:00",
                "instantiatesCanonical": [f"{BASE}/PlanDefinition/cn-basic-medical-package"],
            }
            for i, ref in zip(batch, patients, strict=True)
        ]
        _transaction(conn, contracts)
        out += patients
    return out


def _slots(conn: Connection, hospital: str, n: int) -> list[dict[str, Any]]:
    clinic = _create(
        conn,
        {
            "resourceType": "Location",
            "name": "专家门诊",
            "managingOrganization": {"reference": hospital},
        },
    )
    kind = [{"coding": [_coding("reserved-resource", "expert")]}]
    schedule = _create(
        conn,
        {"resourceType": "Schedule", "serviceCategory": kind, "actor": [{"reference": clinic}]},
    )
    slots: list[dict[str, Any]] = []
    for start in range(0, n, 100):
        batch = []
        for i in range(start, min(n, start + 100)):
            day, minute = divmod(i, 48)
            t = f"2026-05-{1 + day % 28:02d}T{8 + minute // 6:02d}:{(minute % 6) * 10:02d}"
            batch.append(
                {
                    "resourceType": "Slot",
                    "schedule": {"reference": schedule},
                    "serviceCategory": kind,
                    "status": "free",
                    "start": f"{t}:00+08:00",
                    "end": f"{t}:09+08:00",
                }
            )
        for ref, slot in zip(_transaction(conn, batch), batch, strict=True):
            slots.append({**slot, "id": ref.split("/")[1]})
    return slots


def _referral(i: int, resident: str, doctor: str, hospital: str) -> bytes:
    direction = _ext("cn-referral-direction", valueCoding=_coding("referral-direction", "up"))
    return orjson.dumps(
        {
            "resourceType": "ServiceRequest",
            "extension": [direction],
            "identifier": [{"system": f"{BASE}/sid/referral", "value": f"ZZB{i:07d}"}],
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": CATEGORY, "code": "referral"}]}],
            "priority": "routine",
            "subject": {"reference": resident},
            "authoredOn": "2026-04-01T09:00:00+08:00",
            "requester": {"reference": doctor},
            "performer": [{"reference": hospital}],
            "reasonCode": [{"coding": [_coding("referral-reason", "beyond-capacity")]}],
        }
    )


def _step(task: dict[str, Any], status: str, business: str) -> bytes:
    task = {**task, "status": status}
    task["businessStatus"] = {"coding": [_coding("referral-status", business)]}
    return orjson.dumps(task)


def run(database_url: str, workers: int, clients: int, loops: int) -> Table:
    with gateway_process(database_url, workers) as server:
        setup = Connection(server.base)
        team_org = _organization(setup, "越秀区社区卫生服务中心")
        hospital = _organization(setup, "广州市第一人民医院")
        team, doctor = _team(setup, team_org)
        residents = _residents(setup, loops, team, doctor)
        slots = _slots(setup, hospital, loops)
        setup.close()
        steps: dict[str, list[float]] = {s: [] for s in STEPS}
        lock = threading.Lock()

        def timed(name: str, conn: Connection, method: str, url: str, body: bytes | None) -> Any:
            t = time.perf_counter()
            r = conn.request(method, url, body, HEADERS)
            elapsed = time.perf_counter() - t
            assert r.status in (200, 201), (name, r.status, r.body[:500])
            with lock:
                steps[name].append(elapsed)
            return orjson.loads(r.body)

        def loop(conn: Connection, i: int) -> None:
            made = timed(
                "refer",
                conn,
                "POST",
                "ServiceRequest",
                _referral(i, residents[i], doctor, hospital),
            )
            ref = f"ServiceRequest/{made['id']}"
            found = timed("find task", conn, "GET", f"Task?focus={ref}", None)
            task = found["entry"][0]["resource"]
            task = timed(
                "accept", conn, "PUT", f"Task/{task['id']}", _step(task, "accepted", "accepted")
            )
            slot = slots[i]
            appointment = {
                "resourceType": "Appointment",
                "status": "booked",
                "basedOn": [{"reference": ref}],
                "slot": [{"reference": f"Slot/{slot['id']}"}],
                "start": slot["start"],
                "end": slot["end"],
                "participant": [{"actor": {"reference": residents[i]}, "status": "accepted"}],
            }
            timed("book", conn, "POST", "Appointment", orjson.dumps(appointment))
            task = timed(
                "arrive", conn, "PUT", f"Task/{task['id']}", _step(task, "in-progress", "arrived")
            )
            timed(
                "complete", conn, "PUT", f"Task/{task['id']}", _step(task, "completed", "completed")
            )

        seconds, _ = run_clients(server.base, clients, loops, loop)
    table = Table(title=f"Up-referrals, PostgreSQL, {clients} clients, {workers} workers")
    for col in ("step", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    for name in STEPS:
        p50, p95 = median_p95_ms(steps[name])
        table.add_row(name, f"{p50:.1f}", f"{p95:.1f}")
    table.add_row(f"{loops} whole loops", f"{loops / seconds:,.1f} /s", "")
    return table


def main_referrals(args: Any, pg_admin: str) -> Table:
    with throwaway_postgres(pg_admin) as url:
        return run(url, args.workers, 8, args.referral_loops)
