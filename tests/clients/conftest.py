"""A real gateway on loopback, driven by real FHIR clients (fhirpy, fhirclient).

`live_gateway` serves `create_app(Settings(...))` with the defaults `make run` uses (only the
database is ours) through uvicorn on a free 127.0.0.1 port, in a background thread with its own
event loop; the clients talk plain HTTP to it. There is one per `database_url` parameter
(sqlite, postgres), each on a throwaway database of that kind of its own, migrated with
`gateway migrate` and alive only while this package's tests run: its outbox relay and its
start-up writes never touch the database the other suites' in-process app shares. `gateway`
empties the database before each test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import requests
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import _drop_postgres, _fresh_postgres, need_service, truncate_all

START_TIMEOUT = 60.0
PROJECT = Path(__file__).resolve().parents[2]


def _without_gateway_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def _migrate(url: str) -> None:
    """`gateway migrate --database-url URL`, the command `make run` runs first."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate", "--database-url", url],
        cwd=PROJECT,
        env=_without_gateway_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway migrate failed:\n{done.stdout}\n{done.stderr[-3000:]}")


@dataclass
class LiveGateway:
    """A running gateway: `base` is the FHIR base URL (http://127.0.0.1:PORT/fhir)."""

    base: str
    database_url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def run(self, coro, timeout: float = 60.0):
        """Run a coroutine on the server's event loop (where its engine lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def reset(self) -> None:
        """Empty every table, as the other suites' `client` fixture does."""
        self.run(truncate_all(self.app.state.core.store.engine))


def _serve(server: uvicorn.Server, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(server.serve(sockets=[sock]))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())


@pytest.fixture(scope="package")
async def live_database_url(database_url: str, tmp_path_factory) -> AsyncIterator[str]:
    """A migrated, empty database of the same kind as `database_url`, for the live gateway."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('live') / 'gateway.db'}"
        await asyncio.to_thread(_migrate, url)
        yield url
        return
    base = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    url, name = await _fresh_postgres(base)
    try:
        await asyncio.to_thread(_migrate, url)
        yield url
    finally:
        await _drop_postgres(base, name)


@pytest.fixture(scope="package")
def live_gateway(live_database_url: str) -> Iterator[LiveGateway]:
    # Defaults, as `make run` serves: only the database is ours; no Redis, no .env file, and
    # no GATEWAY_* variable of the developer's shell (pydantic-settings would read them).
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
            env.delenv(name)
        settings = Settings(database_url=live_database_url, redis_url=None, _env_file=None)
    app = create_app(settings)
    # Bind first and hand the socket to uvicorn: no window in which another process could take
    # the port between choosing it and listening on it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        proxy_headers=True,  # as `gateway serve` runs it
        access_log=False,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=_serve, args=(server, sock, loop), name=f"gateway-{port}", daemon=True
    )
    thread.start()
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the gateway stopped during start-up (see the captured log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        health = httpx.get(f"{root}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        yield LiveGateway(root + settings.base_path, live_database_url, app, loop)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():  # a request that never ends: stop waiting for it
            server.force_exit = True
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        sock.close()


@pytest.fixture
def gateway(live_gateway: LiveGateway) -> LiveGateway:
    """The running gateway, on an empty database."""
    live_gateway.reset()
    return live_gateway


class Wire:
    """Every HTTP exchange a requests-based client made (a `requests` response hook): the
    clients hide statuses and headers that the FHIR spec defines, the tests assert them."""

    def __init__(self) -> None:
        self.log: list[requests.Response] = []

    def record(self, response: requests.Response, *args, **kwargs) -> requests.Response:
        self.log.append(response)
        return response

    def last(self, method: str | None = None) -> requests.Response:
        for response in reversed(self.log):
            if method is None or response.request.method == method.upper():
                return response
        raise AssertionError(f"no {method or 'HTTP'} request was made")

    def requests_of(self, method: str) -> list[requests.Response]:
        return [r for r in self.log if r.request.method == method.upper()]

    def transcript(self, last: int = 6) -> str:
        lines = []
        for r in self.log[-last:]:
            req = r.request
            lines.append(f"{req.method} {unquote(req.url or '')}")
            for name in ("If-None-Exist", "If-Match", "Prefer", "Content-Type"):
                if name in req.headers:
                    lines.append(f"  {name}: {req.headers[name]}")
            lines.append(f"  -> {r.status_code} {r.reason}")
            for name in ("Location", "ETag", "Content-Location"):
                if name in r.headers:
                    lines.append(f"  {name}: {r.headers[name]}")
            if r.status_code >= 400 or r.text.startswith('{"resourceType":"OperationOutcome"'):
                lines.append(f"  {r.text[:1500]}")
        return "\n".join(lines)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the client's last HTTP exchanges (statuses, OperationOutcomes)."""
    outcome = yield
    report = outcome.get_result()
    recorded = getattr(item, "funcargs", {}).get("wire")
    if report.when == "call" and report.failed and isinstance(recorded, Wire) and recorded.log:
        report.sections.append(("HTTP exchanges (latest last)", recorded.transcript()))


@pytest.fixture
def fhirpy_client(gateway: LiveGateway, wire: Wire):
    """fhirpy's synchronous client (requests) on the gateway."""
    from fhirpy import SyncFHIRClient

    return SyncFHIRClient(
        gateway.base, requests_config={"timeout": 30, "hooks": {"response": [wire.record]}}
    )


@pytest.fixture
def smart(gateway: LiveGateway, wire: Wire):
    """A SMART on FHIR client (fhirclient 4, R4 models) on the gateway, not yet prepared."""
    from fhirclient import client

    smart = client.FHIRClient(settings={"app_id": "gateway-tests", "api_base": gateway.base})
    smart.server.session.hooks["response"].append(wire.record)
    return smart
