"""Access tokens: issued by the token endpoint (SMART Backend Services) and verified on every
request, the gateway's own or a configured identity provider's.

Token endpoint (RFC 6749 client_credentials + RFC 7523 client assertion, SMART App Launch
"Backend Services"): the client posts a JWT it signed (RS384 or ES384) with `iss` = `sub` =
its client id, `aud` = the token endpoint, `exp` at most five minutes ahead, a `jti` never used
before; the key is found by `kid` in the JWK Set registered with the client (or fetched from
its `jwks_uri`). The answer is an access token: a JWT the gateway signs (ES384, with `kid`),
valid TOKEN_LIFETIME seconds, carrying the client, its Organization, its role and the scopes
granted (the requested ones its registration allows).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from gateway.auth import scopes
from gateway.auth.clients import Client, ClientStore
from gateway.auth.keys import ALG, SigningKeys
from gateway.auth.remote_keys import RemoteKeys
from gateway.auth.replay import ReplayGuard
from gateway.vocab import clock, outcomes

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ALGS = ["RS384", "ES384"]
MAX_ASSERTION_SECONDS = 300  # SMART: exp no more than five minutes in the future
MAX_JTI = 255
_VERIFIED_MAX = 10_000


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for."""

    client_id: str
    organization: str | None
    role: str
    scopes: tuple[str, ...]
    issuer: str


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """A region's own identity provider, whose access tokens the gateway accepts."""

    issuer: str
    jwks_url: str
    audience: str | None
    claim_client: str = "client_id"
    claim_organization: str = "organization"
    claim_role: str = "role"
    claim_scope: str = "scope"
    algorithms: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384")


class TokenService:
    def __init__(
        self,
        clients: ClientStore,
        keys: SigningKeys,
        replay: ReplayGuard,
        remote: RemoteKeys,
        *,
        lifetime: int,
        skew: int,
        role_scopes: Callable[[str], str],
        idp: IdentityProvider | None = None,
    ):
        self.clients = clients
        self.keys = keys
        self.replay = replay
        self.remote = remote
        self.lifetime = lifetime
        self.skew = skew
        self.role_scopes = role_scopes
        self.idp = idp
        # (token, audience) → (exp, principal): a token's signature is verified once.
        self._verified: dict[tuple[str, str], tuple[int, Principal]] = {}

    # --- the token endpoint -----------------------------------------------------------------
    async def issue(self, form: dict[str, str], token_url: str, audience: str) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion") or ""
        client, claims = await self._client_assertion(assertion, token_url)
        # Kept until no clock the gateway tolerates could still take the assertion.
        until = int((claims["exp"] + self.skew) * 10**6)
        if not await self.replay.first_use(client.client_id, claims["jti"], until):
            raise OAuthError("invalid_client", "this client assertion (jti) was used already", 401)
        requested = scopes.parse_all(form.get("scope", ""))
        allowed = scopes.parse_all(client.scopes or self.role_scopes(client.role))
        granted = scopes.grant(requested, allowed)
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes may be granted")
        scope = " ".join(s.text() for s in granted)
        now = clock.now_us() // 10**6
        key = await self.keys.signing_key()
        token = jwt.encode(
            {"alg": ALG, "kid": key.kid, "typ": "JWT"},
            {
                "iss": audience,  # the issuer the SMART configuration names: the FHIR base
                "sub": client.client_id,
                "aud": audience,
                "iat": now,
                "nbf": now,
                "exp": now + self.lifetime,
                "jti": str(uuid.uuid4()),
                "client_id": client.client_id,
                "organization": client.organization,
                "role": client.role,
                "scope": scope,
            },
            key,
            algorithms=[ALG],
        )
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.lifetime,
            "scope": scope,
        }

    async def _client_assertion(self, assertion: str, token_url: str) -> tuple[Client, dict]:
        try:
            header, unverified = _peek(assertion)
        except (JoseError, ValueError):
            raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None
        if header.get("alg") not in CLIENT_ALGS:
            raise OAuthError(
                "invalid_client", "client_assertion must be signed RS384 or ES384", 401
            )
        client_id = unverified.get("iss")
        client = await self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or not client.enabled:
            raise OAuthError("invalid_client", "unknown or disabled client", 401)
        keys = await self._client_keys(client, header.get("kid"))
        try:
            token = jwt.decode(assertion, keys, algorithms=CLIENT_ALGS)
            JWTClaimsRegistry(
                leeway=self.skew,
                iss={"essential": True, "value": client.client_id},
                sub={"essential": True, "value": client.client_id},
                aud={"essential": True, "value": token_url},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(token.claims)
        except JoseError as exc:
            raise OAuthError("invalid_client", f"client_assertion refused: {exc}", 401) from None
        claims = token.claims
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise OAuthError("invalid_client", "client_assertion exp is not a NumericDate", 401)
        if exp > clock.now_us() / 10**6 + MAX_ASSERTION_SECONDS + self.skew:
            raise OAuthError(
                "invalid_client", "client_assertion exp is more than 5 minutes away", 401
            )
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= MAX_JTI:
            raise OAuthError(
                "invalid_client", f"client_assertion jti: 1 to {MAX_JTI} characters", 401
            )
        return client, claims

    async def _client_keys(self, client: Client, kid: Any) -> KeySet:
        if not isinstance(kid, str):
            raise OAuthError("invalid_client", "client_assertion header needs a kid", 401)
        try:
            if client.jwks is not None:
                return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
            assert client.jwks_uri is not None
            return await self.remote.keyset(client.jwks_uri, kid)
        except Exception as exc:  # noqa: BLE001 - a client's keys we cannot read or fetch
            raise OAuthError(
                "invalid_client", f"the client's keys are unavailable: {exc}", 401
            ) from None

    # --- every request ----------------------------------------------------------------------
    async def verify(self, authorization: str | None, audience: str) -> Principal:
        if not authorization:
            raise outcomes.unauthorized(
                "Authentication required: send an access token (Bearer)", token_sent=False
            )
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise outcomes.unauthorized("The Authorization header must be 'Bearer <access token>'")
        token = token.strip()
        cached = self._verified.get((token, audience))
        now = clock.now_us() // 10**6
        if cached is not None and cached[0] + self.skew > now:
            principal = cached[1]
        else:
            try:
                header, unverified = _peek(token)
            except (JoseError, ValueError):
                raise outcomes.unauthorized("The access token is not a JWT") from None
            if self.idp is not None and unverified.get("iss") == self.idp.issuer:
                principal = await self._verify_idp(token, header, audience)
            else:
                principal = await self._verify_own(token, header, audience)
            exp = unverified.get("exp")
            if isinstance(exp, int):  # verified once; until it expires, only its client is checked
                if len(self._verified) >= _VERIFIED_MAX:
                    self._verified.clear()
                self._verified[(token, audience)] = (exp, principal)
        if self.idp is None or principal.issuer != self.idp.issuer:  # a registered client's
            client = await self.clients.get(principal.client_id)
            if client is None or not client.enabled:
                raise outcomes.unauthorized("The access token's client is unknown or disabled")
        return principal

    async def _verify_own(self, token: str, header: dict, audience: str) -> Principal:
        try:
            keys = await self.keys.verification_keys(header.get("kid"))
            decoded = jwt.decode(token, keys, algorithms=[ALG])
            JWTClaimsRegistry(
                leeway=self.skew,
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                nbf={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except JoseError as exc:
            raise outcomes.unauthorized(f"The access token is not valid here: {exc}") from None
        claims = decoded.claims
        client = await self.clients.get(claims["sub"])
        if client is None or not client.enabled:
            raise outcomes.unauthorized("The access token's client is unknown or disabled")
        # The registration decides the role and organisation (as registered when the token
        # was first verified; a disabled client is refused at once).
        return Principal(
            client.client_id,
            client.organization,
            client.role,
            tuple(str(claims.get("scope", "")).split()),
            str(claims.get("iss", "")),
        )

    async def _verify_idp(self, token: str, header: dict, audience: str) -> Principal:
        idp = self.idp
        assert idp is not None
        try:
            keys = await self.remote.keyset(idp.jwks_url, header.get("kid"))
            decoded = jwt.decode(token, keys, algorithms=list(idp.algorithms))
            # RFC 9068 §4: the token must be meant for this resource server: the configured
            # audience, else the gateway's own FHIR base.
            JWTClaimsRegistry(
                leeway=self.skew,
                exp={"essential": True},
                aud={"essential": True, "value": idp.audience or audience},
            ).validate(decoded.claims)
        except JoseError as exc:
            raise outcomes.unauthorized(
                f"The identity provider's token is not valid: {exc}"
            ) from None
        except Exception:  # noqa: BLE001 - the provider's keys could not be fetched
            raise outcomes.error(
                503, "transient", "GW-1041", "The identity provider's keys are unavailable"
            ) from None
        claims = decoded.claims
        client_id, org, role = (
            claims.get(idp.claim_client),
            claims.get(idp.claim_organization),
            claims.get(idp.claim_role),
        )
        if not isinstance(client_id, str) or not isinstance(role, str):
            raise outcomes.unauthorized("The identity provider's token names no client or role")
        raw = claims.get(idp.claim_scope, "")
        granted = raw.split() if isinstance(raw, str) else [s for s in raw if isinstance(s, str)]
        return Principal(
            client_id, org if isinstance(org, str) else None, role, tuple(granted), idp.issuer
        )


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A compact JWS's header and claims, unverified: they only choose where the verifying key
    comes from (joserfc checks the signature and every claim afterwards)."""
    obj = jws.extract_compact(token.encode())
    claims = orjson.loads(obj.payload)
    if not isinstance(claims, dict):
        raise ValueError("the JWT payload is not an object")
    return dict(obj.headers()), claims
