"""Requests per client per minute, with authentication on: over the limit a client gets 429
with Retry-After (seconds to the next window). Counted in Redis when it is configured, so every
replica shares one count (INCR on a key per client and minute, expiring with the window), in
the process otherwise."""

from __future__ import annotations

import time
from typing import Any

from gateway.vocab import outcomes

_PREFIX = "gateway:rate:"


class RateLimiter:
    def __init__(self, per_minute: int, redis: Any | None = None):
        self.per_minute = per_minute
        self.redis = redis
        self._counts: dict[tuple[str, int], int] = {}

    async def check(self, client_id: str) -> None:
        if self.per_minute <= 0:
            return
        now = time.time()
        window = int(now // 60)
        if self.redis is not None:
            key = f"{_PREFIX}{client_id}:{window}"
            count = await self.redis.incr(key)
            if count == 1:
                await self.redis.expire(key, 120)
        else:
            if len(self._counts) > 100_000:  # old windows: drop them all at once
                self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
            count = self._counts.get((client_id, window), 0) + 1
            self._counts[(client_id, window)] = count
        if count > self.per_minute:
            err = outcomes.error(
                429,
                "throttled",
                "GW-1044",
                f"Too many requests: {self.per_minute} a minute for a client; retry later",
            )
            err.headers["Retry-After"] = str(max(1, int(60 - now % 60)))
            raise err
