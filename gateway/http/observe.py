"""Operating the gateway: request ids, access log lines, Prometheus metrics, readiness, traces.

- **Request id.** A sane incoming `X-Request-Id` (1–128 characters `A-Za-z0-9._:@=+/-`,
  starting with a letter or digit, not an identity number) is kept, anything else replaced by
  a new one; it is echoed on every answer as `X-Request-Id`, set in `gateway.vocab.logs.
  REQUEST_ID` for every log line made while the request is handled, and handed on in the
  request's headers, so the request's AuditEvent names it (gateway.http.auth_routes reads it).
- **Metrics** (gateway.vocab.metrics): requests by interaction, resource type and status, and
  their latency, counted here for every request under the FHIR base (the interaction as the
  FHIR router names it: read, search-type, transaction, $everything, …; labels only ever take
  values from the router's table, never a client's text). `GET /metrics` serves the registry,
  with the outbox lag measured then (the age of the oldest event not yet relayed); with
  several uvicorn workers (PROMETHEUS_MULTIPROC_DIR, set by `gateway serve`) it aggregates
  every worker's counts.
- **Readiness** (`GET /readyz`): the database answers, its schema is at the code's Alembic
  head, and Redis answers when configured; each within 2 s.
- **Traces**: with an OpenTelemetry exporter configured (OTEL_EXPORTER_OTLP_ENDPOINT, …) and
  the opentelemetry SDK installed, a server span per request (W3C `traceparent` honoured);
  otherwise nothing is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import func, select, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.fhir.request import FhirRequest
from gateway.store.tables import outbox
from gateway.vocab import logs, metrics, redact
from gateway.vocab.logs import REQUEST_ID
from gateway.vocab.outcomes import OperationOutcomeError

log = logging.getLogger("gateway.access")
ops_log = logging.getLogger("gateway.observe")

HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+/-]{0,127}")
# Operational endpoints: not FHIR requests, not counted (a scrape every few seconds would
# drown the figures).
OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
READY_TIMEOUT = 2.0


def request_id(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one (32 hex digits)."""
    if incoming and _SAFE_ID.fullmatch(incoming) and redact.mask(incoming) == incoming:
        return incoming
    return uuid.uuid4().hex


class Observe:
    """ASGI middleware, outermost: request id, metrics, access log line, trace span."""

    def __init__(self, app: ASGIApp, base_path: str = "/fhir", tracer: Any = None) -> None:
        self.app = app
        self.base = base_path.rstrip("/")
        self.tracer = tracer
        logs.install()  # every log record names the request it was made for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        raw = next((v for k, v in headers if k == HEADER), None)
        incoming = raw.decode("latin-1") if raw is not None else None
        rid = request_id(incoming)
        if rid != incoming:  # downstream (the AuditEvent) sees the id the client is told
            headers = [(k, v) for k, v in headers if k != HEADER] + [(HEADER, rid.encode())]
            scope = {**scope, "headers": headers}
        rid_bytes = rid.encode()
        status = 500
        path = scope.get("path", "")
        counted = path not in OPS_PATHS
        interaction, res_type = self.classify(scope) if counted else ("", "")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                out.append((HEADER, rid_bytes))
                message = {**message, "headers": out}
            await send(message)

        token = REQUEST_ID.set(rid)
        start = time.perf_counter()
        span = self._span(scope, interaction, res_type, rid) if self.tracer else None
        try:
            with span or contextlib.nullcontext():
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    elapsed = time.perf_counter() - start
                    if span is not None:
                        self._end_span(status)
                    if counted:  # inside the span: the access line names the trace
                        self._count(interaction, res_type, status, elapsed)
                        self._log(scope, interaction, res_type, status, elapsed)
        finally:
            REQUEST_ID.reset(token)

    def classify(self, scope: Scope) -> tuple[str, str]:
        """(interaction, resource type) as the FHIR router names them; ("other", "") outside
        the FHIR base, ("auth", "") for the token endpoint and keys, ("invalid", "") for what
        the router cannot match (unknown type, bad id, unknown operation)."""
        path: str = scope.get("path", "")
        if path != self.base and not path.startswith(self.base + "/"):
            return "other", ""
        rest = path[len(self.base) :].strip("/")
        if rest.startswith(("auth/", ".well-known/")):
            return "auth", ""
        app = scope.get("app")
        core = getattr(getattr(app, "state", None), "core", None)
        if core is None:
            return "other", ""
        try:
            route, args = core.router.match(FhirRequest(method=scope["method"], path=rest))
        except OperationOutcomeError:
            return "invalid", ""
        return route.interaction, args.get("res_type") or ""

    @staticmethod
    def _count(interaction: str, res_type: str, status: int, elapsed: float) -> None:
        metrics.REQUESTS.labels(interaction, res_type, str(status)).inc()
        metrics.LATENCY.labels(interaction, res_type).observe(elapsed)

    @staticmethod
    def _log(scope: Scope, interaction: str, res_type: str, status: int, elapsed: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        # The path names types and ids only; of the query, the parameter names (values may be
        # names and identifiers of residents).
        query = scope.get("query_string", b"").decode("latin-1")
        names = sorted({p.split("=", 1)[0] for p in query.split("&") if p})
        client = scope.get("client")
        log.info(
            "%s %s %s %.1f ms",
            scope["method"],
            scope.get("path", ""),
            status,
            elapsed * 1000,
            extra={
                "method": scope["method"],
                "path": scope.get("path", ""),
                "query_params": names,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "interaction": interaction,
                "resource_type": res_type,
                "client_addr": client[0] if client else None,
            },
        )

    def _span(self, scope: Scope, interaction: str, res_type: str, rid: str) -> Any:
        """A server span, current while the request is handled, continuing the caller's
        trace (W3C traceparent)."""
        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        name = f"{scope['method']} {interaction}" + (f" {res_type}" if res_type else "")
        return self.tracer.start_as_current_span(
            name,
            context=propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "url.path": scope.get("path", ""),
                "fhir.interaction": interaction,
                "fhir.resource_type": res_type,
                "gateway.request_id": rid,
            },
        )

    @staticmethod
    def _end_span(status: int) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(trace.Status(trace.StatusCode.ERROR))


# --- /metrics ---------------------------------------------------------------------------------


def multiprocess() -> bool:
    """prometheus-client counts into per-process files (PROMETHEUS_MULTIPROC_DIR was set when
    it was first imported): /metrics must aggregate them."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


async def outbox_lag(engine: Any) -> float | None:
    """Seconds since the oldest event still in the outbox was written (0: none waiting);
    None when the database does not answer in time."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with engine.connect() as conn:
                oldest = (await conn.execute(select(func.min(outbox.c.created_at)))).scalar()
    except Exception:  # noqa: BLE001 - a scrape never fails for it: the gauge keeps its value
        return None
    if oldest is None:
        return 0.0
    return max(0.0, time.time() - oldest / 1_000_000)


async def metrics_endpoint(request: Request) -> Response:
    core = getattr(request.app.state, "core", None)
    if core is not None:
        lag = await outbox_lag(core.store.read_engine)
        if lag is not None:
            metrics.OUTBOX_LAG.set(lag)
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest(REGISTRY)
    return Response(data, media_type=CONTENT_TYPE_LATEST)


# --- /readyz ----------------------------------------------------------------------------------


@functools.cache
def migrations_head() -> str:
    """The newest Alembic revision(s) the code ships ("a,b" while branches are unmerged)."""
    from alembic.script import ScriptDirectory

    from gateway.store.migrate import MIGRATIONS

    return ",".join(sorted(ScriptDirectory(str(MIGRATIONS)).get_heads()))


async def readiness(request: Request) -> JSONResponse:
    """200 while this replica can serve: the database answers, its schema is the code's
    (Alembic head), and Redis answers when configured; 503 with Retry-After otherwise (take
    the replica out of the load balancer until it is). Failures name their kind only: a
    message may name hosts and users."""
    state = request.app.state
    head = migrations_head()
    problems: dict[str, str] = {}
    report: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with state.core.store.read_engine.connect() as conn:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
                current = ",".join(sorted(r[0] for r in rows)) or None
        report["database"] = "ok"
        if current != head:
            problems["migrations"] = f"database at {current}, code at {head}: run gateway migrate"
        else:
            report["migrations"] = head
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        problems["database"] = type(exc).__name__
    if state.settings.redis_url:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await state.relay.bus.check()
            report["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            problems["redis"] = type(exc).__name__
    if problems:
        return JSONResponse(
            {"status": "unavailable", **report, **problems},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", **report})


# --- traces -----------------------------------------------------------------------------------

_TRACE_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def tracer(mode: str = "auto") -> Any:
    """An OpenTelemetry tracer when an exporter is configured and the SDK is importable; None
    otherwise (nothing of OpenTelemetry is imported then). `mode` off: never."""
    if mode == "off" or not any(os.environ.get(name) for name in _TRACE_ENV):
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        ops_log.warning(
            "an OpenTelemetry exporter is configured but the opentelemetry SDK is not "
            "installed (pip install opentelemetry-sdk opentelemetry-exporter-otlp): no traces"
        )
        return None
    exporter = _exporter()
    if exporter is None:
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # one provider per process
        name = os.environ.get("OTEL_SERVICE_NAME", "fhir-gateway")
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    return trace.get_tracer("gateway")


def _exporter() -> Any:
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    try:
        if protocol.startswith("grpc"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[no-redef]
                OTLPSpanExporter,
            )
    except ImportError:
        ops_log.warning(
            "OTEL_EXPORTER_OTLP_* is set but no OTLP exporter is installed "
            "(pip install opentelemetry-exporter-otlp): no traces"
        )
        return None
    return OTLPSpanExporter()
