"""Subscriptions: a gateway with delivery inline (the embedded default's way) and quick
retries, and real receivers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import client_for, running_app
from tests.subscriptions.receiver import Receiver

FAST = {
    "subscription_retry_base": 0.05,
    "subscription_retry_max": 0.2,
    "subscription_poll": 0.05,
    "subscription_max_failures": 4,
    "subscription_lease": 3.0,
    "subscription_timeout": 2.0,
}


@pytest.fixture(scope="session")
async def sub_app(database_url: str):
    async with running_app(database_url, worker_inline="on", **FAST) as application:
        yield application


@pytest.fixture
async def sub_client(sub_app):
    async with client_for(sub_app) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()
