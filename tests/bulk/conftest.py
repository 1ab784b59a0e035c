"""A gateway whose bulk runner runs in-process (the embedded default), with small pages and
small files so that a test's export spans several commits and several files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import client_for, fresh_database, running_app

FILE_MAX_BYTES = 6000


@pytest.fixture(scope="module")
async def bulk_database(database_url, tmp_path_factory) -> AsyncIterator[str]:
    """A database of the module's own: the in-process bulk runners of other tests' gateways
    (alive for the session, with other settings) would otherwise claim its jobs."""
    async with fresh_database(database_url, tmp_path_factory.mktemp("bulkdb")) as url:
        yield url


@pytest.fixture(scope="module")
async def bulk_app(bulk_database, tmp_path_factory) -> AsyncIterator:
    async with running_app(
        bulk_database,
        bulk_import_dir=tmp_path_factory.mktemp("import"),
        validation_workers=0,
        bulk_poll_interval=0.05,
        bulk_page_size=7,
        bulk_file_max_bytes=FILE_MAX_BYTES,
        bulk_slice_seconds=0.2,
        bulk_retry_after=1,
    ) as application:
        yield application


@pytest.fixture
async def bulk(bulk_app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(bulk_app) as c:
        yield c
