"""Client-assertion ids already used (RFC 7523 §3: a `jti` is accepted once until it expires):
in Redis when it is configured (SET NX with the remaining lifetime), in the database otherwise
(a unique key; expired rows are swept as new ones arrive)."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.tables import auth_jti
from gateway.vocab import clock

_PREFIX = "gateway:jti:"


class ReplayGuard:
    def __init__(self, engine: AsyncEngine, redis: Any | None = None):
        self.engine = engine
        self.redis = redis

    async def first_use(self, client_id: str, jti: str, expires_us: int) -> bool:
        """True the first time (client, jti) is seen before it expires, False on a replay."""
        key = f"{client_id} {jti}"
        now = clock.now_us()
        ttl_ms = max(1, (expires_us - now) // 1000)
        if self.redis is not None:
            try:
                return bool(await self.redis.set(_PREFIX + key, b"1", nx=True, px=ttl_ms))
            except RedisError as exc:
                # Fail closed: without Redis no replica can tell a replay (503, retry later).
                raise ConnectionError(f"replay store unavailable: {type(exc).__name__}") from exc
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(auth_jti).where(auth_jti.c.expires_at < now))
                await conn.execute(insert(auth_jti).values(jti=key, expires_at=expires_us))
        except IntegrityError:
            return False
        return True
