"""Work in flight, bounded: how many requests with a body one process works on at once, and
how many body bytes it holds together. A request beyond either waits a moment for room, then
is turned away with 503 and Retry-After (never queued without bound, never a 500 from an
exhausted connection pool or a process out of memory).

Bytes are reserved before a body is read (its declared length; a chunked body's as it grows),
and a work slot only once the body is in: a client sending slowly holds memory it declared,
not one of the few slots that hold database connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from gateway.vocab import outcomes

RETRY_AFTER_SECONDS = 2


class Admission:
    def __init__(
        self,
        max_requests: int,
        max_bytes: int,
        wait_seconds: float = 2.0,
        on_drained: Callable[[], None] | None = None,
        drained_after_bytes: int = 4 * 1024 * 1024,
    ):
        self.slots = asyncio.Semaphore(max_requests)
        self.max_bytes = max_bytes
        self.wait_seconds = wait_seconds
        self.bytes_in_flight = 0
        self._freed = asyncio.Condition()
        # Called (in a thread) when the last body in flight is let go after at least
        # `drained_after_bytes` passed through: the moment to give memory back.
        self.on_drained = on_drained
        self.drained_after_bytes = drained_after_bytes
        self._passed = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self.slots.acquire(), self.wait_seconds)
        except TimeoutError:
            raise _busy("too many requests in progress") from None
        try:
            yield
        finally:
            self.slots.release()

    @contextlib.asynccontextmanager
    async def budget(self) -> AsyncIterator[Budget]:
        held = Budget(self)
        try:
            yield held
        finally:
            if held.size:
                async with self._freed:
                    self.bytes_in_flight -= held.size
                    self._passed += held.size
                    self._freed.notify_all()
                if self.bytes_in_flight == 0 and self._passed >= self.drained_after_bytes:
                    self._passed = 0
                    if self.on_drained is not None:
                        asyncio.get_running_loop().run_in_executor(None, self.on_drained)

    async def _reserve(self, size: int) -> None:
        async def room() -> None:
            async with self._freed:
                await self._freed.wait_for(lambda: self.bytes_in_flight + size <= self.max_bytes)
                self.bytes_in_flight += size

        try:
            await asyncio.wait_for(room(), self.wait_seconds)
        except TimeoutError:
            raise _busy("too many request bodies in progress") from None


class Budget:
    """The bytes one request holds; grows to what its body turns out to be."""

    def __init__(self, admission: Admission):
        self.admission = admission
        self.size = 0

    async def grow_to(self, size: int) -> None:
        # One body alone may use the whole budget (its own limit is max_body_bytes).
        size = min(size, self.admission.max_bytes)
        if size > self.size:
            await self.admission._reserve(size - self.size)
            self.size = size


def _busy(what: str) -> outcomes.OperationOutcomeError:
    return outcomes.unavailable(
        f"The gateway is saturated ({what}): retry shortly", RETRY_AFTER_SECONDS, "GW-1046"
    )
