"""Two gateway processes and a `gateway worker` on one PostgreSQL and one Redis (issue 15):
a bounded, concurrent, mixed load across both replicas (conditional creates raced from both
sides, If-Match updates raced, transactions with conditional entries, creates read back on
the other replica) held to the ledger of what the gateways answered. The load and every
invariant are gateway/bench/replicas.py's (its docstring lists them)."""

from __future__ import annotations

import httpx
import pytest

from gateway.bench.replicas import FHIR, Ledger, Load, check, drive, region
from tests.conftest import need_service


def test_two_replicas_and_a_worker_lose_nothing_and_double_nothing():
    admin = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    load = Load(keys=6, racers=6, counters=3, writers_per_counter=4, updates=8, bundles=6)
    ledger = Ledger()
    with region(admin, redis_url) as rg:
        drive(rg.bases, load, ledger)
        figures = check(rg, ledger)
        # the worker serves its own counters (subscription deliveries, export jobs)
        worker_metrics = httpx.get(rg.worker_metrics, timeout=10)
        assert worker_metrics.status_code == 200
        assert "# TYPE gateway_subscription_deliveries_total counter" in worker_metrics.text
        assert "# TYPE gateway_export_jobs_total counter" in worker_metrics.text
    # the load did race: conditional creates answered both ways, If-Match writers collided
    assert figures["conditional creates"] == load.keys * load.racers
    assert figures["If-Match refused (412/409), all superseded"] > 0, figures
    assert figures["If-Match updates acknowledged"] > 0, figures
    assert figures["transactions acknowledged"] == load.bundle_writers * load.bundles
    assert figures["households (one Patient each)"] <= load.households
    assert figures["events in stream"] >= len(ledger.written)
    print(figures)


def test_the_proxy_spreads_requests_over_both_replicas_and_survives_one(tmp_path):
    """deploy/nginx.conf in front of two real replicas: requests reach both, request ids go
    from the edge to the gateway and back, /metrics stays inside, and when one replica stops
    every request is still answered by the other."""
    import json
    import shutil
    import socket
    import subprocess
    import time
    from pathlib import Path

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from tests.integration.test_operate import nginx_config_for

    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("nginx is not installed")
    admin = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")

    def counted(root: str) -> float:
        body = httpx.get(f"{root}/metrics", timeout=10).text
        return sum(
            s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
            if s.name == "gateway_requests_total"
        )

    with region(admin, redis_url) as rg:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        a, b = (root.removeprefix("http://") for root in rg.roots)
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_config_for({"gateway-a": a, "gateway-b": b}, listen=port))
        access_log = tmp_path / "access.log"
        with open(access_log, "ab") as out:  # append: nginx reopens /dev/stdout
            proxy = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(tmp_path),
                    "-e",
                    "stderr",
                    "-c",
                    str(conf),
                    "-g",
                    "daemon off; pid nginx.pid;",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            edge = f"http://127.0.0.1:{port}"
            deadline = time.time() + 20
            while True:
                try:
                    if httpx.get(f"{edge}/proxy-health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.time() < deadline and proxy.poll() is None, access_log.read_text()
                time.sleep(0.1)
            assert httpx.get(f"{edge}/metrics").status_code == 404
            http = httpx.Client(base_url=f"{edge}/fhir", headers=FHIR, timeout=30)
            ids = []
            for k in range(20):
                r = http.post(
                    "/Patient",
                    json={"resourceType": "Patient", "name": [{"text": f"边缘 {k}"}]},
                    headers={"X-Request-Id": f"edge-{k}"},
                )
                assert r.status_code == 201 and r.headers["x-request-id"] == f"edge-{k}", r.text
                ids.append(r.json()["id"])
            anonymous = http.get(f"/Patient/{ids[0]}")  # no id sent: nginx's own, kept
            assert anonymous.status_code == 200 and len(anonymous.headers["x-request-id"]) == 32
            per_replica = [counted(root) for root in rg.roots]
            assert all(n > 0 for n in per_replica) and sum(per_replica) == 21, per_replica
            # one replica stops: the other answers everything, reads and writes
            rg.gateways[0].stop()
            for pid in ids:
                assert http.get(f"/Patient/{pid}").status_code == 200
            r = http.post("/Patient", json={"resourceType": "Patient"})
            assert r.status_code == 201, r.text
            http.close()
        finally:
            proxy.terminate()
            proxy.wait(10)
        lines = [json.loads(x) for x in access_log.read_text().splitlines() if x.startswith("{")]
        logged = {line["request_id"] for line in lines}
        assert {f"edge-{k}" for k in range(20)} <= logged
        assert anonymous.headers["x-request-id"] in logged


def test_partition_simulation_shards_answer_as_one_database():
    """docs/scale.md's simulation, small: carving a database into household shards keeps
    every compartment whole (routed shapes answer as the single database) and the fanned-out
    shapes' totals add up to the single database's."""
    import asyncio

    from gateway.bench.partition import SHAPES, simulate

    admin = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    result = asyncio.run(simulate(admin, households=12, shards=2, repeat=1))
    assert [row.shape for row in result.rows] == [s.name for s in SHAPES]
    assert all(row.agrees for row in result.rows), [r for r in result.rows if not r.agrees]
    touched = {row.shape: row.shards_touched for row in result.rows}
    assert touched["read Patient/{id}"] == 1 and touched["Patient/{id}/$everything"] == 1
    assert touched["Observation?code=… (one code, every resident)"] == 2
    assert result.split_by_household == 0.0 and result.split_by_patient > 0.0
    patients = [kept.get("Patient", 0) for kept in result.kept]
    assert sum(patients) == 36 and all(patients)  # every resident on exactly one shard
    assert all(kept.get("Practitioner") == 30 for kept in result.kept)  # replicated
