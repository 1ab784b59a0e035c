"""Store: the engine plus what every repository shares (index extractor, hooks, outbox relay)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.model import Event, Stored, Write
from gateway.store.repository import Repository, WriteHook
from gateway.store.rows import IndexRows
from gateway.vocab.context import RequestContext


class Extractor(Protocol):
    def extract(self, resource: dict[str, Any]) -> IndexRows: ...


class CommitListener(Protocol):
    def notify(self, events: Sequence[Event]) -> None: ...


# Called at the end of every write (in its transaction) with what was written; returns more
# writes to make in the same transaction (provenance, audit), which are not annotated again.
Annotator = Callable[[Repository, list[Stored]], Awaitable[list[Write]]]


class Store:
    def __init__(
        self,
        engine: AsyncEngine,
        extractor: Extractor,
        hooks: Sequence[WriteHook] = (),
        listeners: Sequence[CommitListener] = (),
        annotators: Sequence[Annotator] = (),
        check_engine: AsyncEngine | None = None,
    ):
        self.engine = engine
        # Same pool; connections checked out through it run each statement in autocommit.
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Access checks of single resources (Repository.sees): connections that keep generic
        # plans, where the engine's plan every statement for its values (see engine.py).
        self._check_pool = check_engine
        self.check_engine = (check_engine or engine).execution_options(isolation_level="AUTOCOMMIT")
        self.extractor = extractor
        self.hooks = list(hooks)
        self.listeners = list(listeners)
        self.annotators = list(annotators)

    def repository(self, ctx: RequestContext) -> Repository:
        return Repository(self, ctx)

    async def after_commit(self, events: Sequence[Event]) -> None:
        if events:
            for listener in self.listeners:
                listener.notify(events)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._check_pool is not None:
            await self._check_pool.dispose()
