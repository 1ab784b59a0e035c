"""Shared fixtures: real SQLite and real PostgreSQL (and Redis), never mocks.

PostgreSQL and Redis tests read GATEWAY_TEST_POSTGRES_URL / GATEWAY_TEST_REDIS_URL. Without
them they skip with a reason, except when CI=true: there a missing service is a failure.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.search.reindex import migrate_async
from gateway.settings import Settings
from gateway.store.engine import create_engine, normalise_url
from gateway.store.tables import metadata

IN_CI = os.environ.get("CI", "").lower() == "true"
CORPORA = Path(
    os.environ.get(
        "GATEWAY_CORPORA", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
    )
).resolve()


def need_service(env: str, what: str) -> str:
    url = os.environ.get(env)
    if not url:
        if IN_CI:
            pytest.fail(f"{env} is not set: CI must provide {what}")
        pytest.skip(f"{env} not set: {what} tests skipped")
    return url


def need_corpus(*parts: str) -> Path:
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"corpus {path} missing in CI")
        pytest.skip(f"corpus {path} not present")
    return path


async def _fresh_postgres(base_url: str) -> tuple[str, str]:
    """A throwaway database on the server named by base_url: (url, name)."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(normalise_url(base_url)).set(database=name)
    return url.render_as_string(hide_password=False), name


async def _drop_postgres(base_url: str, name: str) -> None:
    admin = create_engine(base_url)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@contextlib.asynccontextmanager
async def fresh_database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A migrated database of its own: a SQLite file in `folder`, or a throwaway PostgreSQL
    database (dropped after)."""
    if kind.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
        await migrate_async(url)
        yield url
        return
    base = need_service("GATEWAY_TEST_POSTGRES_URL", "PostgreSQL")
    url, name = await _fresh_postgres(base)
    try:
        await migrate_async(url)
        yield url
    finally:
        await _drop_postgres(base, name)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(request, tmp_path_factory) -> AsyncIterator[str]:
    async with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@contextlib.asynccontextmanager
async def running_app(database_url: str, **overrides):
    """A gateway app on `database_url` with its lifespan running."""
    values = {"redis_url": None, **overrides}
    settings = Settings(database_url=database_url, _env_file=None, **values)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@contextlib.asynccontextmanager
async def client_for(application) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the ASGI app, on an empty database."""
    await truncate_all(application.state.core.store.engine)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver/fhir",
        headers={"content-type": "application/fhir+json"},
        timeout=120,
    ) as c:
        yield c


@pytest.fixture(scope="session")
async def app(database_url: str):
    async with running_app(database_url) as application:
        yield application


async def truncate_all(engine) -> None:
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def core(app):
    return app.state.core


# --- validation (profiles, terminology) ------------------------------------------------------
@pytest.fixture(scope="session")
def core_dir() -> Path:
    """The official R4 definition bundles (for snapshot generation and freshness checks)."""
    return need_corpus("fhir-r4-definitions")


@pytest.fixture(scope="session")
def registry():
    """Profiles + the R4 core definitions shipped in the package: what the gateway runs on."""
    from gateway.validation.registry import ProfileRegistry

    return ProfileRegistry.load()


@pytest.fixture(scope="session")
def validator(registry):
    from gateway.validation.validator import Validator

    return Validator(registry)


@pytest.fixture(scope="session")
def core_validator(registry):
    from gateway.validation.validator import Validator

    return Validator(registry, default_profiles=())
