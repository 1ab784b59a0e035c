"""A real gateway on loopback, driven by real FHIR clients (fhirpy, fhirclient).

`live_gateway` serves the gateway with the defaults `make run` uses (only the database is ours;
see tests/live.py); the clients talk plain HTTP to it. There is one per `database_url` parameter
(sqlite, postgres), each on a throwaway database of that kind of its own, migrated with
`gateway migrate` and alive only while this package's tests run: its outbox relay and its
start-up writes never touch the database the other suites' in-process app shares. `gateway`
empties the database before each test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from tests.conftest import _drop_postgres, _fresh_postgres, need_service
from tests.live import LiveGateway, live_server

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
    with live_server(live_database_url) as gateway:
        yield gateway


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
