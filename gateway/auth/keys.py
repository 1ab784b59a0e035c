"""The gateway's token-signing keys (ES384), shared by every replica through `auth_keys`.

The newest key signs. A key older than the rotation period is replaced by a new one at the
next signing (two replicas rotating at once each add one: both verify). A key stays in the
verification set until every token it signed has expired (rotation + token lifetime + clock
skew), then it is deleted. Private keys are kept in the database: protect it (and its
backups) as a secret store.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.tables import auth_keys
from gateway.vocab import clock

ALG = "ES384"
_REFRESH_SECONDS = 30.0


class SigningKeys:
    def __init__(self, engine: AsyncEngine, rotation_seconds: int, keep_seconds: int):
        self.engine = engine
        self.rotation_us = rotation_seconds * 1_000_000
        self.keep_us = (rotation_seconds + keep_seconds) * 1_000_000
        self._keys: list[tuple[int, ECKey]] = []  # (created µs, key), newest first
        self._loaded = 0.0
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(auth_keys).order_by(auth_keys.c.created_at.desc()))
            self._keys = [
                (r.created_at, ECKey.import_key(orjson.loads(r.private_jwk))) for r in rows
            ]
        self._loaded = time.monotonic()

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded > _REFRESH_SECONDS:
            await self._load()

    async def signing_key(self) -> ECKey:
        async with self._lock:
            await self._fresh()
            now = clock.now_us()
            if self._keys and now - self._keys[0][0] < self.rotation_us:
                return self._keys[0][1]
            key = ECKey.generate_key("P-384", private=True, auto_kid=True)
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(auth_keys).values(
                        kid=key.kid,
                        alg=ALG,
                        private_jwk=orjson.dumps(key.as_dict(private=True)).decode(),
                        created_at=now,
                    )
                )
                # Keys whose every token has expired: nothing left for them to verify.
                await conn.execute(
                    delete(auth_keys).where(auth_keys.c.created_at < now - self.keep_us)
                )
            await self._load()
            return key

    async def verification_keys(self, kid: str | None = None) -> KeySet:
        """The keys that may have signed a live token; reloaded when `kid` is not among them
        (another replica rotated)."""
        await self._fresh()
        if kid is not None and not any(k.kid == kid for _, k in self._keys):
            async with self._lock:
                await self._load()
        now = clock.now_us()
        return KeySet([k for created, k in self._keys if now - created < self.keep_us])

    async def public_jwks(self) -> dict:
        keys = await self.verification_keys()
        return {"keys": [k.as_dict(private=False) | {"alg": ALG, "use": "sig"} for k in keys.keys]}
