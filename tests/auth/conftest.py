"""A gateway with authentication on, and clients that obtain tokens the SMART way."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.auth.clients import ClientStore
from tests.conftest import running_app, truncate_all

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BASE = "http://testserver/fhir"
TOKEN_URL = f"{BASE}/auth/token"


@dataclass
class SmartClient:
    """A registered backend-services client holding its private key."""

    client_id: str
    key: RSAKey | ECKey
    alg: str
    organization: str
    role: str
    extra_claims: dict = field(default_factory=dict)

    def public_jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def assertion(self, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def form(self, scope: str = "system/*.read", **assertion) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(**assertion),
        }


def new_key(alg: str) -> RSAKey | ECKey:
    if alg == "RS384":
        return RSAKey.generate_key(2048, private=True, auto_kid=True)
    return ECKey.generate_key("P-384", private=True, auto_kid=True)


@pytest.fixture(scope="module")
async def auth_app(database_url) -> AsyncIterator:
    async with running_app(database_url, auth="on", validation_workers=0) as application:
        yield application


@pytest.fixture
async def http(auth_app) -> AsyncIterator[httpx.AsyncClient]:
    await truncate_all(auth_app.state.core.store.engine)
    auth_app.state.tokens.clients._cache.clear()
    transport = httpx.ASGITransport(app=auth_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as c:
        yield c


@pytest.fixture
def register(auth_app):
    store: ClientStore = auth_app.state.tokens.clients

    async def make(
        role: str = "admin",
        organization: str = "Organization/org-a",
        alg: str = "RS384",
        scopes: str | None = None,
        client_id: str | None = None,
    ) -> SmartClient:
        key = new_key(alg)
        client = SmartClient(
            client_id or f"client-{uuid.uuid4().hex[:8]}", key, alg, organization, role
        )
        await store.add(
            client.client_id, organization, role, jwks=client.public_jwks(), scopes=scopes
        )
        return client

    return make


async def token_for(
    http: httpx.AsyncClient, client: SmartClient, scope: str = "system/*.cruds"
) -> str:
    r = await http.post("/auth/token", data=client.form(scope))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
