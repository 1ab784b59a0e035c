"""create_app(settings): the lifespan builds engine, store, search registry, event relay."""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from gateway.access.audit import AuditLog, annotate
from gateway.access.control import AccessControl
from gateway.access.policy import Policy, load_policy
from gateway.auth.clients import ClientStore
from gateway.auth.keys import SigningKeys
from gateway.auth.remote_keys import RemoteKeys
from gateway.auth.replay import ReplayGuard
from gateway.auth.tokens import IdentityProvider, TokenService
from gateway.background import WorkerContext, start_parts, stop_parts
from gateway.bulk.operations import EXPORT, IMPORT
from gateway.bulk.routes import bulk_routes
from gateway.events.bus import EventBus, InProcessBus, RedisStreamBus
from gateway.events.relay import OutboxRelay
from gateway.fhir.conformance import install_conformance
from gateway.fhir.core import FhirCore
from gateway.fhir.operations import Operation
from gateway.fhir.operations.episode import EPISODE
from gateway.fhir.operations.everything import EVERYTHING
from gateway.fhir.operations.ingest import INGEST
from gateway.fhir.operations.native import NATIVE
from gateway.fhir.operations.recognized import RECOGNIZED_RESULTS
from gateway.fhir.operations.terminology import EXPAND, LOOKUP, VALIDATE_CODE
from gateway.fhir.operations.validate import VALIDATE
from gateway.http import observe
from gateway.http.adapter import base_url, error_response, fhir_endpoint
from gateway.http.admission import Admission
from gateway.http.auth_routes import (
    jwks,
    record_access,
    request_context,
    smart_configuration,
    token_endpoint,
)
from gateway.http.hosts import HostCheck
from gateway.http.memory import configure_allocator, release_memory
from gateway.http.rate_limit import RateLimiter
from gateway.mapping.registry import mappings
from gateway.policy.pack import Packs
from gateway.policy.rules import DomainRules
from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.search.sql import SearchSql
from gateway.settings import Settings
from gateway.store.engine import create_engine
from gateway.store.store import Store
from gateway.subscriptions.operations import EVENTS as SUBSCRIPTION_EVENTS
from gateway.subscriptions.operations import REPLAY as SUBSCRIPTION_REPLAY
from gateway.subscriptions.operations import STATUS as SUBSCRIPTION_STATUS
from gateway.vocab import outcomes, redact
from gateway.vocab.lifeline import on_parent_exit

log = logging.getLogger("gateway")


class AnyMethod:
    """The FHIR endpoint as an ASGI app, so that Starlette routes every method to it (it limits
    a plain function endpoint to the methods listed). The FHIR router answers the methods it
    does not serve with a 405 OperationOutcome carrying an accurate Allow header, OPTIONS with
    Allow, and HEAD wherever it serves GET."""

    def __init__(self) -> None:
        self.app = request_response(fhir_endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def load_registry(settings: Settings) -> SearchParamRegistry:
    return SearchParamRegistry.load(extra_dirs=[settings.profiles_dir / "SearchParameter"])


def domain_rules(settings: Settings, registry: SearchParamRegistry) -> DomainRules:
    """The policy packs (profiles/policy/*.yaml) and the rules that read them; a broken pack
    stops start-up (PackError names the file and the place)."""
    from gateway.search.values import normalize_string

    packs = Packs.load(settings.profiles_dir / "policy")
    return DomainRules(packs, registry, SearchSql(normalize_string))


def redis_client(url: str) -> Any:
    """A Redis client that gives up within seconds: a frozen or unreachable Redis must turn
    into an error the caller handles, never a request (or the event relay) hanging on it."""
    import redis.asyncio as aioredis

    return aioredis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def make_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        return RedisStreamBus(
            redis_client(settings.redis_url), stream=f"{settings.redis_prefix}:events"
        )
    return InProcessBus()


def operations() -> dict[str, Operation]:
    ops = (
        *(VALIDATE, EXPAND, LOOKUP, VALIDATE_CODE, EVERYTHING, INGEST, NATIVE, EPISODE),
        RECOGNIZED_RESULTS,
        *(EXPORT, IMPORT),
        *(SUBSCRIPTION_STATUS, SUBSCRIPTION_EVENTS, SUBSCRIPTION_REPLAY),
    )
    return {op.name: op for op in ops}


async def build_core(settings: Settings) -> tuple[FhirCore, OutboxRelay]:
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        statement_timeout=settings.db_statement_timeout,
        pool_timeout=settings.db_pool_timeout,
    )
    registry = load_registry(settings)
    relay = OutboxRelay(engine, make_bus(settings))
    # With authentication on, every write leaves its Provenance (and AuditEvent) in its own
    # transaction.
    rules = domain_rules(settings, registry)
    annotators: list[Any] = [rules.after_writes]
    if settings.auth == "on" and settings.audit:
        annotators.append(annotate)
    check_engine = None
    if settings.auth == "on" and engine.dialect.name == "postgresql":
        check_engine = create_engine(
            settings.database_url,
            pool_size=4,
            generic_plans=True,
            statement_timeout=settings.db_statement_timeout,
            pool_timeout=settings.db_pool_timeout,
        )
    store = Store(
        engine,
        IndexExtractor(registry),
        hooks=[rules.before_write],
        listeners=[relay],
        annotators=annotators,
        check_engine=check_engine,
    )
    mappings()  # the mapping specs, checked: a broken one stops start-up, naming its place
    return FhirCore(settings, store, registry, operations()), relay


@dataclass
class AuthParts:
    """With authentication on: the token service, the access control, the rate limiter, and
    what to close at shutdown (all None / empty with it off)."""

    tokens: TokenService | None = None
    access: AccessControl | None = None
    limiter: RateLimiter | None = None
    closers: list[Any] = field(default_factory=list)


async def build_auth(settings: Settings, policy: Policy, core: FhirCore) -> AuthParts:
    if settings.auth == "off":
        return AuthParts()
    engine = core.store.engine
    http = httpx.AsyncClient()
    redis = None
    if settings.redis_url:
        redis = redis_client(settings.redis_url)
    idp = None
    if settings.auth_idp_issuer and settings.auth_idp_jwks_url:
        idp = IdentityProvider(
            settings.auth_idp_issuer,
            settings.auth_idp_jwks_url,
            settings.auth_idp_audience,
            settings.auth_idp_claim_client,
            settings.auth_idp_claim_organization,
            settings.auth_idp_claim_role,
            settings.auth_idp_claim_scope,
        )
    tokens = TokenService(
        ClientStore(engine),
        SigningKeys(
            engine,
            settings.auth_key_rotation,
            settings.auth_token_lifetime + settings.auth_clock_skew,
        ),
        ReplayGuard(engine, redis),
        RemoteKeys(http),
        lifetime=settings.auth_token_lifetime,
        skew=settings.auth_clock_skew,
        role_scopes=lambda role: policy.role(role).scopes if role in policy.roles else "",
        idp=idp,
    )
    access = AccessControl(
        policy, lambda t, q: core.parse_search(t, q), core.search_sql, core.store
    )
    closers: list[Any] = [http.aclose]
    if redis is not None:
        closers.append(redis.aclose)
    return AuthParts(tokens, access, RateLimiter(settings.rate_limit_per_minute, redis), closers)


def add_auth_routes(app: FastAPI, base: str) -> None:
    """The token endpoint, the SMART configuration and the signing keys, before the FHIR
    catch-all route."""

    async def token(request: Request) -> Response:
        return await token_endpoint(request, base_url(request, request.app.state.settings))

    async def configuration(request: Request) -> Response:
        try:
            return smart_configuration(request, base_url(request, request.app.state.settings))
        except outcomes.OperationOutcomeError as err:
            return error_response(err)

    async def keys(request: Request) -> Response:
        try:
            return await jwks(request)
        except outcomes.OperationOutcomeError as err:
            return error_response(err)

    async def not_post(request: Request) -> Response:
        err = outcomes.method_not_allowed(request.method, request.url.path)
        err.headers["Allow"] = "POST"
        return error_response(err)

    app.router.routes.append(Route(f"{base}/auth/token", token, methods=["POST"]))
    app.router.routes.append(
        Route(f"{base}/auth/token", not_post, methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"])
    )
    app.router.routes.append(
        Route(f"{base}/.well-known/smart-configuration", configuration, methods=["GET"])
    )
    app.router.routes.append(Route(f"{base}/auth/jwks", keys, methods=["GET"]))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    redact.install()  # identity numbers never appear whole in this process's logs

    policy = load_policy(settings.access_policy or settings.profiles_dir / "policy" / "access.yaml")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        core, relay = await build_core(settings)
        registry = core.write_check.validator.registry
        await install_conformance(core.store, list(registry.local_resources()))
        app.state.settings = settings
        app.state.core = core
        configure_allocator()
        app.state.admission = Admission(
            settings.max_inflight_writes, settings.max_inflight_bytes, on_drained=release_memory
        )
        app.state.relay = relay
        auth = await build_auth(settings, policy, core)
        app.state.tokens, app.state.access = auth.tokens, auth.access
        app.state.rate_limiter, closers = auth.limiter, auth.closers
        app.state.audit_log = None
        if settings.auth == "on" and settings.audit:
            app.state.audit_log = AuditLog(core.store)
            app.state.audit_log.start()
            closers.insert(0, app.state.audit_log.stop)
        if settings.auth == "off":
            log.warning(
                "DEVELOPMENT MODE: authentication is off (GATEWAY_AUTH=off): every client may "
                "read and change everything. Serve on loopback only."
            )
        relay.start()
        app.state.background = []
        if settings.runs_worker_inline():
            inline_redis = redis_client(settings.redis_url) if settings.redis_url else None
            app.state.background = await start_parts(
                WorkerContext(settings, core, relay, inline_redis)
            )
            if inline_redis is not None:
                closers.append(inline_redis.aclose)
        core.validation.warm()
        # A uvicorn worker (GATEWAY_WORKERS > 1) whose supervisor is killed stops gracefully,
        # instead of serving on, unsupervised, from the shared socket.
        on_parent_exit(lambda: os.kill(os.getpid(), signal.SIGTERM))
        # Start-up built long-lived objects (models, registries, profiles): move them out of
        # the collector's generations so each full collection walks only request garbage.
        gc.freeze()
        try:
            yield
        finally:
            await stop_parts(app.state.background)
            await relay.stop()
            await relay.bus.close()
            for close in closers:
                await close()
            core.validation.close()
            await core.store.dispose()

    app = FastAPI(
        title="FHIR family-doctor gateway", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    if settings.allowed_hosts:  # a Host header outside the list is a 400 before anything
        app.add_middleware(HostCheck, allowed=settings.allowed_hosts)
    # Browser apps: the configured origins and loopback (development) only; preflights are
    # answered here, before authentication (a preflight carries no token).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?",
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Accept",
            "Prefer",
            "If-Match",
            "If-None-Match",
            "If-None-Exist",
            "If-Modified-Since",
            "X-Request-ID",
        ],
        expose_headers=["Location", "ETag", "Last-Modified", "Content-Location", "Retry-After"],
        max_age=600,
    )
    # Outermost: the request id (echoed, in every log line and the AuditEvent), the metrics
    # and the access log line of every answer, the HostCheck's and CORS's included.
    app.add_middleware(
        observe.Observe, base_path=settings.base_path, tracer=observe.tracer(settings.tracing)
    )
    base = settings.base_path.rstrip("/")
    add_auth_routes(app, base)
    # Bulk Data status polling, cancel and file downloads (gateway/bulk/routes.py).
    app.router.routes.extend(bulk_routes(base, request_context, record_access))
    endpoint = AnyMethod()
    for path in (base, base + "/{path:path}"):
        app.router.routes.append(Route(path, endpoint, methods=None, include_in_schema=False))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Errors raised before the FHIR endpoint (unknown paths, …): OperationOutcomes too."""
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        err = outcomes.error(exc.status_code, code, "GW-1028", str(exc.detail))
        err.headers.update(exc.headers or {})  # Allow on a 405 (RFC 9110 §15.5.6)
        return error_response(err, head=request.method == "HEAD")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the database answers within 2 seconds with its schema at the code's
        migration head, and Redis when configured (else 503: take this replica out of the
        load balancer until it does)."""
        return await observe.readiness(request)

    # Prometheus metrics (every worker's, aggregated): for the scraper, not for clients (the
    # proxy of docker-compose.yml does not pass it on).
    app.router.routes.append(Route("/metrics", observe.metrics_endpoint, methods=["GET"]))

    return app
