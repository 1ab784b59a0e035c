"""create_app(settings): the lifespan builds engine, store, search registry, event relay."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from gateway.events.bus import EventBus, InProcessBus, RedisStreamBus
from gateway.events.relay import OutboxRelay
from gateway.fhir.conformance import install_conformance
from gateway.fhir.core import FhirCore
from gateway.fhir.operations import Operation
from gateway.fhir.operations.everything import EVERYTHING
from gateway.fhir.operations.terminology import EXPAND, LOOKUP, VALIDATE_CODE
from gateway.fhir.operations.validate import VALIDATE
from gateway.http.adapter import error_response, fhir_endpoint
from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.settings import Settings
from gateway.store.engine import create_engine
from gateway.store.store import Store
from gateway.vocab import outcomes


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


def make_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        import redis.asyncio as aioredis

        return RedisStreamBus(aioredis.from_url(settings.redis_url))
    return InProcessBus()


def operations() -> dict[str, Operation]:
    return {op.name: op for op in (VALIDATE, EXPAND, LOOKUP, VALIDATE_CODE, EVERYTHING)}


async def build_core(settings: Settings) -> tuple[FhirCore, OutboxRelay]:
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    registry = load_registry(settings)
    relay = OutboxRelay(engine, make_bus(settings))
    store = Store(engine, IndexExtractor(registry), listeners=[relay])
    return FhirCore(settings, store, registry, operations()), relay


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        core, relay = await build_core(settings)
        registry = core.write_check.validator.registry
        await install_conformance(core.store, list(registry.local_resources()))
        app.state.settings = settings
        app.state.core = core
        app.state.relay = relay
        relay.start()
        core.validation.warm()
        # Start-up built long-lived objects (models, registries, profiles): move them out of
        # the collector's generations so each full collection walks only request garbage.
        gc.freeze()
        try:
            yield
        finally:
            await relay.stop()
            await relay.bus.close()
            core.validation.close()
            await core.store.dispose()

    app = FastAPI(
        title="FHIR family-doctor gateway", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    base = settings.base_path.rstrip("/")
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
        return JSONResponse({"status": "ok"})

    return app
