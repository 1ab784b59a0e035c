"""`python -m gateway.bench --recognition`: `$recognized-results` for a patient with 1,000
results, on PostgreSQL (and SQLite with `--only sqlite` or without `--only`), 1 client.

Setup: three Guangzhou institutions of different levels (a community health centre 一级, a
district hospital 二级, a city hospital 三级), each lab with a passed 室间质评 covering the year;
one resident with 1,000 results (Observation and DiagnosticReport, 20 recognisable items,
spread over the three labs and the 400 days before the day of the decision), written in
transactions of 100. Measured: `GET Patient/{id}/$recognized-results?requester=…&code=<5
tests>&date=…`, the three institutions asking in turn; printed median and p95 (target p95
≤ 50 ms), and the same for one test per call.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from rich.table import Table

from gateway.bench.clients import Connection, median_p95_ms, run_clients
from gateway.bench.server import gateway_process, throwaway_postgres, throwaway_sqlite

BASE = "https://fhir.jtys.cn"
LOINC = "http://loinc.org"
HEADERS = {"content-type": "application/fhir+json"}
DAY = date(2026, 6, 30)  # the day of the decisions
ITEMS = [
    "1558-6", "718-7", "6690-2", "777-3", "2823-3", "4548-4", "2093-3", "2571-8", "2085-9",
    "13457-7", "2160-0", "3094-0", "3084-1", "1742-6", "1920-8", "5196-1", "16935-9",
]  # fmt: skip
REPORTS = ["36643-5", "24627-2", "11524-6"]  # chest X-ray, chest CT, ECG: DiagnosticReports
ASKED = ["4548-4", "1558-6", "2160-0", "1742-6", "36643-5"]
LABS = (
    ("社区卫生服务中心", "1A", "440104"),
    ("区人民医院", "2A", "440105"),
    ("市第一人民医院", "3A", "440106"),
)


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": f"{BASE}/StructureDefinition/{name}", **value}


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"system": f"{BASE}/CodeSystem/{system}", "code": code}


def _create(conn: Connection, resource: dict[str, Any]) -> str:
    r = conn.request("POST", resource["resourceType"], orjson.dumps(resource), HEADERS)
    assert r.status == 201, r.body[:500]
    return f"{resource['resourceType']}/{orjson.loads(r.body)['id']}"


def _lab(conn: Connection, name: str, level: str, division: str) -> str:
    qualification = _ext(
        "cn-lab-qualification",
        extension=[
            {"url": "program", "valueCoding": _coding("lab-qualification-program", "eqa")},
            {"url": "period", "valuePeriod": {"start": "2025-01-01", "end": "2026-12-31"}},
            {"url": "passed", "valueBoolean": True},
        ],
    )
    return _create(
        conn,
        {
            "resourceType": "Organization",
            "extension": [
                _ext("cn-institution-level", valueCoding=_coding("institution-level", level)),
                qualification,
            ],
            "name": name,
            "address": [{"extension": [_ext("cn-admin-division", valueCode=division)]}],
        },
    )


def _result(i: int, patient: str, labs: list[str], rnd: random.Random) -> dict[str, Any]:
    taken = (DAY - timedelta(days=rnd.randrange(400))).isoformat()
    common = {
        "status": "final",
        "subject": {"reference": patient},
        "effectiveDateTime": f"{taken}T08:{i % 60:02d}:00+08:00",
        "performer": [{"reference": labs[i % len(labs)]}],
    }
    if i % 10 == 0:
        code = REPORTS[(i // 10) % len(REPORTS)]
        return {
            "resourceType": "DiagnosticReport",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "issued": f"{taken}T12:00:00+08:00",
            "conclusion": "未见明显异常",
            **common,
        }
    code = ITEMS[i % len(ITEMS)]
    return {
        "resourceType": "Observation",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": round(rnd.uniform(1, 10), 1), "unit": "mmol/L"},
        **common,
    }


def setup(conn: Connection, n: int) -> tuple[str, list[str]]:
    labs = [_lab(conn, *lab) for lab in LABS]
    patient = _create(conn, {"resourceType": "Patient", "name": [{"text": "互认测试居民"}]})
    rnd = random.Random(13)
    for start in range(0, n, 100):
        entries = [
            {"resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
            for res in (_result(i, patient, labs, rnd) for i in range(start, min(n, start + 100)))
        ]
        body = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        r = conn.request("POST", "", body, {**HEADERS, "Prefer": "return=minimal"})
        assert r.status == 200, r.body[:500]
    return patient, labs


def _measure(base: str, patient: str, labs: list[str], codes: list[str], n: int) -> tuple:
    pid = patient.split("/")[1]

    def work(c: Connection, i: int) -> None:
        query = urlencode(
            {
                "requester": labs[i % len(labs)],
                "code": ",".join(f"{LOINC}|{c}" for c in codes),
                "date": DAY.isoformat(),
            }
        )
        r = c.request("GET", f"Patient/{pid}/$recognized-results?{query}")
        assert r.status == 200, r.body[:500]
        assert len(orjson.loads(r.body)["entry"]) == len(codes)

    work(Connection(base), 0)  # warm: first use prepares the statements
    _, latencies = run_clients(base, 1, n, work)
    return median_p95_ms(latencies)


def run(name: str, database_url: str, workers: int, results: int, calls: int, table: Table) -> None:
    with gateway_process(database_url, workers) as server:
        conn = Connection(server.base)
        patient, labs = setup(conn, results)
        conn.close()
        _measure(server.base, patient, labs, ASKED, 30)  # warm every worker
        for codes in (ASKED, ASKED[:1]):
            med, p95 = _measure(server.base, patient, labs, codes, calls)
            table.add_row(name, str(results), str(len(codes)), f"{med:.1f}", f"{p95:.1f}")


def main_recognition(args: Any, pg_admin: str) -> Table:
    table = Table(
        title=f"$recognized-results, 1 client, {args.workers} workers (target p95 ≤ 50 ms)"
    )
    for col in ("database", "results", "tests asked", "median ms", "p95 ms"):
        table.add_column(col, justify="right")
    n, calls = args.recognition_results, args.recognition_calls
    if getattr(args, "only", None) in (None, "postgres"):
        with throwaway_postgres(pg_admin) as url:
            run("PostgreSQL", url, args.workers, n, calls, table)
    if getattr(args, "only", None) == "sqlite" or (
        getattr(args, "recognition", False) and args.only is None
    ):
        with throwaway_sqlite() as url:
            run("SQLite", url, args.workers, n, calls, table)
    return table
