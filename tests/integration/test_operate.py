"""Operating the gateway (gateway/http/observe.py): request ids, Prometheus metrics, readiness,
JSON logs. In-process apps on both databases (real SQLite, real PostgreSQL, real Redis), and a
real `gateway serve` process with two workers for the multiprocess metrics and the log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, text

from gateway.bench.server import GatewayProcess, bench_env, migrate_in_thread, throwaway_sqlite
from gateway.http.observe import migrations_head, outbox_lag, request_id
from gateway.store.engine import create_engine
from gateway.store.tables import outbox
from gateway.vocab import logs
from tests.conftest import client_for, fresh_database, need_service, running_app

PATIENT = {"resourceType": "Patient", "name": [{"text": "运维"}], "gender": "female"}
ID_NUMBER = "11010519491231002X"  # a valid GB 11643 number (check character X)
FHIR = {"content-type": "application/fhir+json"}


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics answer: (name, labels) → value."""
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def root_client(application) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(application):  # an empty database
        pass
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=FHIR, timeout=60
    ) as c:
        yield c


# --- request ids --------------------------------------------------------------------------


def test_request_id_keeps_sane_ids_and_replaces_the_rest():
    assert request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    assert request_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").startswith("00-")
    for bad in (None, "", "a" * 129, "有中文", "a b", "x\r\nSet-Cookie: y", "-lead", ID_NUMBER):
        new = request_id(bad)
        assert new != bad and len(new) == 32 and int(new, 16) >= 0, bad


async def test_request_id_is_echoed_and_reaches_every_answer(app):
    async with root_client(app) as c:
        mine = f"req-{uuid.uuid4().hex[:12]}"
        r = await c.post("/fhir/Patient", json=PATIENT, headers={"X-Request-Id": mine})
        assert r.status_code == 201 and r.headers["x-request-id"] == mine
        # generated when absent or unsafe, on errors and operational endpoints too
        seen = set()
        for path, headers in (
            ("/fhir/Patient/nope", {}),
            ("/fhir/NoSuchType", {"X-Request-Id": "bad id with spaces"}),
            ("/healthz", {}),
            ("/nowhere", {"X-Request-Id": ID_NUMBER}),
        ):
            r = await c.get(path, headers=headers)
            assert len(r.headers.get_list("x-request-id")) == 1, r.headers
            rid = r.headers["x-request-id"]
            assert len(rid) == 32 and rid not in seen, (path, rid)
            seen.add(rid)


async def test_log_lines_of_a_request_carry_its_id_and_mask_identity_numbers(app, caplog):
    formatter = logs.JsonFormatter()
    async with root_client(app) as c:
        with caplog.at_level("INFO", logger="gateway.access"):
            caplog.clear()
            r = await c.get(f"/fhir/Patient/{ID_NUMBER}", headers={"X-Request-Id": "trace-me-1"})
            assert r.status_code == 404
    lines = [json.loads(formatter.format(rec)) for rec in caplog.records]
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert len(access) == 1, lines
    line = access[0]
    assert line["request_id"] == "trace-me-1" and line["status"] == 404
    assert line["interaction"] == "read" and line["resource_type"] == "Patient"
    assert ID_NUMBER not in json.dumps(lines) and "110105********002X" in line["path"]


def test_json_formatter_masks_every_field_and_keeps_extras():
    import logging

    token = logs.REQUEST_ID.set("r-42")
    try:
        record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "saw %s", (1,), None)
        record.who = {"id": ID_NUMBER}
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.REQUEST_ID.reset(token)
    assert line["request_id"] == "r-42" and line["message"] == "saw 1"
    assert line["level"] == "warning" and line["who"] == {"id": "110105********002X"}


async def test_the_audit_event_names_the_request_id_the_client_was_told(bare_database):
    """With authentication on, every request leaves an AuditEvent: it names the id echoed to
    the client, a generated one when the client's was unsafe."""
    from gateway.auth.clients import ClientStore
    from tests.auth.conftest import TOKEN_URL, SmartClient, new_key

    async with (
        running_app(bare_database, auth="on", validation_workers=0) as application,
        root_client(application) as c,
    ):
        engine = application.state.core.store.engine
        client = SmartClient("ops-admin", new_key("ES384"), "ES384", "Organization/ops", "admin")
        await ClientStore(engine).add(
            client.client_id, client.organization, client.role, jwks=client.public_jwks()
        )
        assert TOKEN_URL == "http://testserver/fhir/auth/token"  # the audience it signs for
        r = await c.post(
            "/fhir/auth/token",
            data=client.form("system/*.read"),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        told = {}
        for mine in ("kept-id-1", "not a safe id!"):
            r = await c.get("/fhir/Patient", headers={"X-Request-Id": mine, **bearer})
            assert r.status_code == 200, r.text
            told[mine] = r.headers["x-request-id"]
        assert told["kept-id-1"] == "kept-id-1" and len(told["not a safe id!"]) == 32
        deadline = time.monotonic() + 10
        while True:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT content FROM resources WHERE res_type = 'AuditEvent'")
                )
                stored = [bytes(r[0]).decode() for r in rows]
            if all(any(rid in event for event in stored) for rid in told.values()):
                break
            assert time.monotonic() < deadline, f"AuditEvents naming {told}: {stored}"
            await asyncio.sleep(0.2)
        assert not any("not a safe id!" in event for event in stored)


# --- metrics ------------------------------------------------------------------------------


async def test_metrics_count_requests_latency_and_validation_failures(app):
    async with root_client(app) as c:
        before = samples((await c.get("/metrics")).text)
        created = await c.post("/fhir/Patient", json=PATIENT)
        assert created.status_code == 201
        pid = created.json()["id"]
        assert (await c.get(f"/fhir/Patient/{pid}")).status_code == 200
        assert (await c.get("/fhir/Patient/missing")).status_code == 404
        assert (await c.get("/fhir/Patient", params={"gender": "female"})).status_code == 200
        bad = await c.post("/fhir/Patient", json={**PATIENT, "gender": "woman"})
        assert bad.status_code in (400, 422), bad.text
        nested = {"resourceType": "Observation", "status": "final"}  # code missing: invalid
        assert (await c.post("/fhir/Observation", json=nested)).status_code in (400, 422)
        for _ in range(3):
            await c.get("/healthz")  # operational endpoints are not counted
        r = await c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = samples(r.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "gateway_requests_total"
    assert delta(total, interaction="create", type="Patient", status="201") == 1
    assert delta(total, interaction="read", type="Patient", status="200") == 1
    assert delta(total, interaction="read", type="Patient", status="404") == 1
    assert delta(total, interaction="search-type", type="Patient", status="200") == 1
    assert delta(total, interaction="create", type="Patient", status=str(bad.status_code)) == 1
    failures = "gateway_validation_failures_total"
    assert delta(failures, type="Patient") == 1 and delta(failures, type="Observation") == 1
    count = "gateway_request_seconds_count"
    assert delta(count, interaction="read", type="Patient") == 2
    assert not any(k[0] == total and dict(k[1]).get("interaction") == "" for k in after)
    assert ("gateway_outbox_lag_seconds", frozenset()) in after


@pytest.fixture(params=["sqlite", "postgres"])
async def bare_database(request, tmp_path) -> AsyncIterator[str]:
    """A migrated database no gateway (and no relay) runs on."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


async def test_outbox_lag_is_the_age_of_the_oldest_waiting_event(bare_database):
    engine = create_engine(bare_database)
    try:
        assert await outbox_lag(engine) == 0.0
        now = int(time.time() * 1_000_000)
        async with engine.begin() as conn:
            for age in (90, 5):
                await conn.execute(
                    insert(outbox).values(
                        res_type="Patient",
                        res_id=f"p{age}",
                        version=1,
                        action="create",
                        created_at=now - age * 1_000_000,
                        published=False,
                    )
                )
        lag = await outbox_lag(engine)
        assert lag is not None and 90 <= lag < 120
    finally:
        await engine.dispose()


# --- readiness ----------------------------------------------------------------------------


async def test_readiness_checks_migrations_and_redis(bare_database):
    head = migrations_head()
    async with running_app(bare_database) as application, root_client(application) as c:
        r = await c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready", "database": "ok", "migrations": head}
        engine = application.state.core.store.engine
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        try:
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["migrations"].startswith("database at 0004, code at ")
            assert (await c.get("/healthz")).status_code == 200  # alive all the same
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f"UPDATE alembic_version SET version_num = '{head}'"))


async def test_readiness_follows_redis_when_configured(bare_database):
    redis_url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    async with (
        running_app(bare_database, redis_url=redis_url, redis_prefix=prefix) as application,
        root_client(application) as c,
    ):
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["redis"] == "ok", r.text
    with socket_closed_port() as port:
        async with (
            running_app(
                bare_database, redis_url=f"redis://127.0.0.1:{port}/0", redis_prefix=prefix
            ) as application,
            root_client(application) as c,
        ):
            r = await c.get("/readyz")
            assert r.status_code == 503, r.text
            assert r.json()["redis"] in ("ConnectionError", "TimeoutError"), r.text
            assert r.json()["database"] == "ok"


@contextlib.contextmanager
def socket_closed_port():
    """A loopback port nothing listens on (bound and closed: refused connections)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


# --- a real `gateway serve`: two workers, JSON logs ----------------------------------------


def test_two_workers_metrics_are_aggregated_and_logs_are_json():
    with throwaway_sqlite() as url:
        migrate_in_thread(url)
        env = bench_env(
            {"GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "info", "GATEWAY_WORKERS": "2"}
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        gateway = GatewayProcess(url, 2, env)
        gateway.start()
        try:
            http = httpx.Client(base_url=gateway.base, headers=FHIR, timeout=30)
            n = 24
            for k in range(n):
                r = http.get(
                    "/Patient",
                    params={"identifier": f"urn:oid:2.16.156.10011.1.3|{ID_NUMBER}"},
                    headers={"X-Request-Id": f"two-{k}"},
                )
                assert r.status_code == 200 and r.headers["x-request-id"] == f"two-{k}"
            pids = {p.pid for p in gateway.processes()}
            # Whichever worker answers the scrape, it reports every worker's requests.
            counts = set()
            for _ in range(8):
                body = httpx.get(f"{gateway.root}/metrics", timeout=10).text
                found = samples(body)
                counts.add(
                    value(
                        found,
                        "gateway_requests_total",
                        interaction="search-type",
                        type="Patient",
                        status="200",
                    )
                )
            assert counts == {float(n)}, counts
            http.close()
        finally:
            gateway.stop()
        text_log = gateway.log()
        gateway.stderr_path.unlink(missing_ok=True)
    lines = [json.loads(line) for line in text_log.splitlines() if line.startswith("{")]
    non_json = [line for line in text_log.splitlines() if line and not line.startswith("{")]
    assert not non_json, non_json[:5]
    access = {line["request_id"]: line for line in lines if line["logger"] == "gateway.access"}
    assert {f"two-{k}" for k in range(n)} <= set(access)
    assert {line["pid"] for line in access.values()} <= pids
    assert access["two-0"]["query_params"] == ["identifier"]
    assert ID_NUMBER not in text_log


# --- traces -------------------------------------------------------------------------------


def test_no_tracer_without_an_exporter(monkeypatch):
    from gateway.http import observe

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert observe.tracer("auto") is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert observe.tracer("off") is None


async def test_a_server_span_per_request_continuing_the_callers_trace(
    bare_database, monkeypatch, caplog
):
    pytest.importorskip("opentelemetry.sdk", reason="traces are optional: SDK not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gateway.http import observe

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(observe, "tracer", lambda mode: provider.get_tracer("test"))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running_app(bare_database) as application, root_client(application) as c:
        with caplog.at_level("INFO", logger="gateway.access"):
            r = await c.post(
                "/fhir/Patient",
                json=PATIENT,
                headers={
                    "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                    "X-Request-Id": "span-1",
                },
            )
        assert r.status_code == 201
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("POST")]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    span = spans[0]
    assert span.name == "POST create Patient"
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["gateway.request_id"] == "span-1"
    access = [rec for rec in caplog.records if rec.name == "gateway.access"]
    line = json.loads(logs.JsonFormatter().format(access[-1]))
    assert line["request_id"] == "span-1" and line["trace_id"] == trace_id


# --- docker-compose.yml and deploy/ (no docker here: the files are checked for coherence) ---

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = {"service_healthy", "service_completed_successfully", "service_started"}


def _compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else list(command)


def test_compose_services_health_checks_and_dependencies_are_coherent():
    compose = _compose()
    services = compose["services"]
    gateways = sorted(n for n, s in services.items() if _command(s)[:2] == ["gateway", "serve"])
    workers = [n for n, s in services.items() if _command(s)[:2] == ["gateway", "worker"]]
    assert len(gateways) >= 2 and len(workers) == 1, (gateways, workers)
    assert {"postgres", "redis", "proxy", "migrate"} <= set(services)
    for name, svc in services.items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            assert how["condition"] in CONDITIONS, (name, dep, how)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            if how["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must run once"
        if svc.get("restart") != "no":  # every long-running service says whether it is well
            test = svc["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # dependencies have no cycle, and the start order is the documented one
    order: list[str] = []
    pending = dict.fromkeys(services)
    while pending:
        ready = [n for n in pending if set(services[n].get("depends_on") or {}) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]
    published = [n for n, s in services.items() if s.get("ports")]
    assert sorted(published) in (["proxy"], ["prometheus", "proxy"]), published
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
    for name in gateways + workers + ["migrate"]:
        env = services[name]["environment"]
        assert env["GATEWAY_DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
        assert env["GATEWAY_REDIS_URL"].startswith("redis://redis:6379/")
        assert (
            env["GATEWAY_REDIS_PREFIX"]
            == services[gateways[0]]["environment"]["GATEWAY_REDIS_PREFIX"]
        )
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        if name != "migrate":
            assert deps["redis"]["condition"] == "service_healthy"
            assert deps["migrate"]["condition"] == "service_completed_successfully"
    for name in gateways:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services["proxy"]["depends_on"][name]["condition"] == "service_healthy"
        assert _command(services[name])[-1] == "--no-migrate"  # `migrate` did it, once


def test_compose_environment_names_real_settings_with_valid_values():
    from gateway.settings import Settings

    fields = set(Settings.model_fields)
    for name, svc in _compose()["services"].items():
        env = svc.get("environment") or {}
        ours = {k[len("GATEWAY_") :].lower(): v for k, v in env.items() if k.startswith("GATEWAY_")}
        unknown = set(ours) - fields
        assert not unknown, (name, unknown)
        if ours:
            Settings(_env_file=None, **ours)  # each value parses (a typo'd "on" fails here)


def test_proxy_and_scraper_name_exactly_the_services():
    import re

    import yaml

    services = _compose()["services"]
    gateways = {n for n, s in services.items() if _command(s)[:2] == ["gateway", "serve"]}
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    body = re.sub(r"'[^']*'|\"[^\"]*\"|#[^\n]*", "", conf)  # strings and comments out
    assert body.count("{") == body.count("}")
    upstream = re.search(r"upstream gateway \{(.*?)\}", body, re.S)
    assert upstream is not None
    servers = set(re.findall(r"server\s+([\w.-]+):(\d+)", upstream.group(1)))
    assert servers == {(g, "8080") for g in gateways}
    assert re.search(r"location = /metrics \{\s*return 404;", body)
    assert "proxy-health" in " ".join(services["proxy"]["healthcheck"]["test"])
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    port = services["worker"]["environment"]["GATEWAY_WORKER_METRICS_PORT"]
    assert targets == {f"{g}:8080" for g in gateways} | {f"worker:{port}"}
    assert f"127.0.0.1:{port}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])


def nginx_config_for(upstreams: dict[str, str], listen: int | None = None) -> str:
    """deploy/nginx.conf with its upstream hosts replaced (compose's names do not resolve
    here) and, optionally, another port."""
    import re

    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    for name, address in upstreams.items():
        conf = re.sub(rf"server {re.escape(name)}:8080", f"server {address}", conf)
    if listen is not None:
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    return conf


def test_nginx_accepts_the_proxy_configuration(tmp_path):
    import shutil
    import subprocess

    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed: `nginx -t` skipped (the coherence test still ran)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        nginx_config_for({"gateway-a": "127.0.0.1:18081", "gateway-b": "127.0.0.1:18082"})
    )
    r = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and "syntax is ok" in r.stderr, r.stderr
