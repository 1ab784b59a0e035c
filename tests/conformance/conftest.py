"""Fixtures for the conformance suite (the shared ones come from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def db_kind(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


@pytest.fixture
def known_bug(request, db_kind):
    """known_bug(reason, only_on=None): mark the running test as a strict xfail, on every
    database or only on one, for bugs that depend on the backend."""

    def mark(reason: str, only_on: str | None = None) -> None:
        if only_on is None or only_on == db_kind:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))

    return mark
