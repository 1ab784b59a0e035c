"""Event buses: where committed changes are published.

In-process for the embedded default; Redis Streams for production (many replicas and workers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gateway.store.model import Event

Subscriber = Callable[[Event], Awaitable[None]]

STREAM = "gateway:events"


class EventBus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...
    async def check(self) -> None:
        """Raise if the bus cannot take events now."""

    async def close(self) -> None: ...


class InProcessBus:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            for fn in self.subscribers:
                await fn(event)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisStreamBus:
    """XADD each event to a Redis Stream; consumers read it with consumer groups."""

    def __init__(self, redis, stream: str = STREAM, maxlen: int = 1_000_000):  # type: ignore[no-untyped-def]
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen

    async def publish(self, events: Sequence[Event]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in events:
                pipe.xadd(
                    self.stream,
                    {
                        "type": e.res_type,
                        "id": e.res_id,
                        "version": str(e.version),
                        "action": e.action,
                        "principal": e.principal or "",
                    },
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()

    async def check(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()
