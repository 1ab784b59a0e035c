"""The registry of backend-services clients (table `auth_clients`): `gateway clients add |
list | disable`, and the lookups the token endpoint and every request make (cached briefly:
disabling a client takes effect within CACHE_SECONDS on every replica)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.tables import auth_clients
from gateway.vocab import clock

ROLES = ("primary-care", "hospital", "platform", "insurer", "sandbox", "admin")
CACHE_SECONDS = 5.0
_ORG = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9\-._~]{1,128}$")


class ClientError(ValueError):
    """A registration that cannot be made (the CLI prints it)."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    organization: str  # Organization/<id>
    role: str
    jwks: dict | None  # a JWK Set (public keys)
    jwks_uri: str | None
    scopes: str | None  # space-separated; None: the role's
    enabled: bool
    created_at: int


def _row(row) -> Client:  # type: ignore[no-untyped-def]
    return Client(
        row.client_id,
        row.organization,
        row.role,
        orjson.loads(row.jwks) if row.jwks else None,
        row.jwks_uri,
        row.scopes,
        bool(row.enabled),
        row.created_at,
    )


def check_jwks(jwks: dict) -> dict:
    """A public JWK Set: keys with a kid and no private parts."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ClientError("a JWK Set is an object with a non-empty 'keys' array")
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid"):
            raise ClientError("every key of the JWK Set needs a 'kid' (SMART Backend Services)")
        if key.get("kty") not in ("RSA", "EC"):
            raise ClientError(
                f"key {key['kid']}: an RSA or EC public key (assertions are RS384 or ES384)"
            )
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi")):
            raise ClientError(f"key {key['kid']} holds private parts: register the public key")
    return jwks


class ClientStore:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._cache: dict[str, tuple[float, Client | None]] = {}

    async def add(
        self,
        client_id: str,
        organization: str,
        role: str,
        *,
        jwks: dict | None = None,
        jwks_uri: str | None = None,
        scopes: str | None = None,
    ) -> Client:
        if not _CLIENT_ID.match(client_id):
            raise ClientError(f"client id {client_id!r}: 1 to 128 of A-Z a-z 0-9 - . _ ~")
        if not _ORG.match(organization):
            raise ClientError(f"organization {organization!r}: expected Organization/<id>")
        if role not in ROLES:
            raise ClientError(f"role {role!r}: one of {', '.join(ROLES)}")
        if (jwks is None) == (jwks_uri is None):
            raise ClientError("give the client's public keys: a JWK Set or its URL (not both)")
        if jwks is not None:
            check_jwks(jwks)
        if jwks_uri is not None and not jwks_uri.startswith(("https://", "http://")):
            raise ClientError("the JWK Set URL must be http(s)")
        if await self.get(client_id, fresh=True) is not None:
            raise ClientError(f"client {client_id} exists already")
        values = {
            "client_id": client_id,
            "organization": organization,
            "role": role,
            "jwks": orjson.dumps(jwks).decode() if jwks is not None else None,
            "jwks_uri": jwks_uri,
            "scopes": scopes,
            "enabled": True,
            "created_at": clock.now_us(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(auth_clients).values(**values))
        self._cache.pop(client_id, None)
        client = await self.get(client_id, fresh=True)
        assert client is not None
        return client

    async def disable(self, client_id: str) -> bool:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(auth_clients)
                .where(auth_clients.c.client_id == client_id)
                .values(enabled=False)
            )
        self._cache.pop(client_id, None)
        return bool(done.rowcount)

    async def list(self) -> list[Client]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(auth_clients).order_by(auth_clients.c.client_id))
            return [_row(r) for r in rows]

    async def get(self, client_id: str, fresh: bool = False) -> Client | None:
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and not fresh and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(auth_clients).where(auth_clients.c.client_id == client_id)
                )
            ).first()
        client = _row(row) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (now, client)
        return client
