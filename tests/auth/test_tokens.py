"""The token endpoint (SMART Backend Services) and the verification of access tokens on every
FHIR request: discovery, the RS384 and ES384 flows, v1 and v2 scopes, scope escalation,
tampered client assertions (RFC 6749 §5.2 answers, no token issued), tampered access tokens
(401 with an OperationOutcome and a Bearer challenge), disabled clients, key rotation, replay
in the database and in Redis, and an identity provider's tokens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select

import gateway.auth.clients as clients_module
import gateway.auth.remote_keys as remote_keys_module
from gateway.app import create_app
from gateway.auth.remote_keys import RemoteKeys
from gateway.settings import Settings
from gateway.store.tables import auth_jti
from tests.auth.conftest import (
    ASSERTION_TYPE,
    BASE,
    TOKEN_URL,
    SmartClient,
    bearer,
    new_key,
    token_for,
)
from tests.conftest import IN_CI, truncate_all

FHIR_JSON = "application/fhir+json"
PATIENT = {"resourceType": "Patient", "name": [{"family": "Zhang", "given": ["Wei"]}]}

IDP_ISSUER = "https://idp.example.org/realms/region"
IDP_JWKS_URL = "https://idp.example.org/realms/region/protocol/openid-connect/certs"
IDP_AUDIENCE = "fhir-gateway"


# --- helpers ---------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsigned(header: dict, claims: dict) -> str:
    """A JWT with `alg: none` and an empty signature (RFC 7519 §6)."""
    return f"{b64url_json({**header, 'alg': 'none'})}.{b64url_json(claims)}."


def hs256(header: dict, claims: dict, secret: bytes) -> str:
    """A JWT MACed with HS256 under `secret` (the algorithm-confusion attack: the verifier's
    public key used as an HMAC secret)."""
    signing_input = f"{b64url_json({**header, 'alg': 'HS256'})}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def flip_signature(token: str) -> str:
    """The same token with the last signature bytes changed."""
    head, payload, sig = token.split(".")
    tail = "AAAAAA" if sig[-6:] != "AAAAAA" else "BBBBBB"
    return f"{head}.{payload}.{sig[:-6]}{tail}"


def header_of(token: str) -> dict:
    return json.loads(unb64url(token.split(".")[0]))


def claims_of(token: str) -> dict:
    return json.loads(unb64url(token.split(".")[1]))


def now() -> int:
    return int(time.time())


def other_key_like(key: RSAKey | ECKey, kid: str | None) -> RSAKey | ECKey:
    """A fresh key of the same kind, presenting the given kid."""
    params = {"kid": kid} if kid else None
    if isinstance(key, RSAKey):
        return RSAKey.generate_key(2048, parameters=params, private=True)
    return ECKey.generate_key(key.curve_name, parameters=params, private=True)


def signed_assertion(client: SmartClient, key, header: dict | None = None, **claims) -> str:
    """A client assertion with the standard claims (overridable; None drops one), signed by
    `key` with `header` (default: the client's alg and kid)."""
    body = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": TOKEN_URL,
        "exp": now() + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    hdr = header if header is not None else {"alg": client.alg, "kid": client.key.kid}
    return jwt.encode(hdr, body, key, algorithms=[hdr["alg"]])


def token_form(assertion: str, scope: str = "system/*.cruds") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


def assert_oauth_error(r: httpx.Response, status: int, error: str) -> None:
    """RFC 6749 §5.2: a JSON object with `error` (and a description), never a token."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    body = r.json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description"), str) and body["error_description"]
    assert "access_token" not in body
    assert r.headers.get("cache-control") == "no-store"


def assert_unauthorized(r: httpx.Response) -> dict:
    """401 with an OperationOutcome and a Bearer challenge (RFC 6750 §3)."""
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].split(";")[0] == FHIR_JSON
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.split(" ")[0].lower() == "bearer", challenge
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["code"] == "login"
    return outcome


def assert_forbidden(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"


def perms_of(scope: str) -> dict[str, set[str]]:
    """A granted scope string read independently of the gateway: {type: {c,r,u,d,s}} with the
    SMART v1 names (read = rs, write = cud, * = cruds) expanded."""
    v1 = {"read": "rs", "write": "cud", "*": "cruds"}
    out: dict[str, set[str]] = {}
    for item in scope.split():
        context, _, rest = item.partition("/")
        assert context == "system", item
        rtype, _, access = rest.partition(".")
        out.setdefault(rtype, set()).update(v1.get(access, access))
    return out


@contextlib.asynccontextmanager
async def gateway_app(database_url: str, **overrides) -> AsyncIterator:
    """A second gateway app (another replica) on the same database, with its lifespan running.
    (tests.conftest.running_app fixes redis_url=None and cannot take a redis_url override.)"""
    values = {"redis_url": None, "validation_workers": 0, "auth": "on", **overrides}
    application = create_app(Settings(database_url=database_url, _env_file=None, **values))
    async with application.router.lifespan_context(application):
        yield application


@contextlib.asynccontextmanager
async def http_for(application, base: str = BASE) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=base, timeout=60) as c:
        yield c


async def fresh_signing_key(auth_app) -> ECKey:
    """A new signing key, stored in the database now (the `http` fixture empties every table,
    the key rows included, while the app still holds its earlier key in memory)."""
    keys = auth_app.state.tokens.keys
    saved = keys.rotation_us
    keys.rotation_us = 0
    try:
        key = await keys.signing_key()
    finally:
        keys.rotation_us = saved
    assert (await keys.signing_key()).kid == key.kid  # it signs from now on
    return key


async def mint(auth_app, client: SmartClient | None, key=None, kid: str | None = "", **claims):
    """An access token in the gateway's own form, signed ES384 by `key` (default: the gateway's
    current signing key), with its kid unless `kid` is given (None: no kid)."""
    signing = await auth_app.state.tokens.keys.signing_key()
    key = key or signing
    t = now()
    body = {
        "iss": BASE,
        "sub": client.client_id if client else "nobody",
        "aud": BASE,
        "iat": t,
        "nbf": t,
        "exp": t + 300,
        "jti": str(uuid.uuid4()),
        "client_id": client.client_id if client else "nobody",
        "organization": client.organization if client else None,
        "role": client.role if client else "admin",
        "scope": "system/*.cruds",
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    header = {"alg": "ES384", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid or signing.kid
    return jwt.encode(header, body, key, algorithms=["ES384"])


async def create_patient(http: httpx.AsyncClient, token: str) -> str:
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


# --- discovery -------------------------------------------------------------------------------
async def test_smart_configuration(http):
    r = await http.get("/.well-known/smart-configuration")  # public: no token
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    doc = r.json()
    assert doc["issuer"].startswith(BASE)  # its tokens' iss: see the issuer test below
    assert doc["token_endpoint"] == TOKEN_URL
    assert doc["jwks_uri"] == f"{BASE}/auth/jwks"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(doc["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(
        doc["capabilities"]
    )
    supported = set(doc["scopes_supported"])
    assert {"system/Patient.read", "system/Patient.rs"} <= supported
    assert not any(s.startswith(("patient/", "user/")) for s in supported)


async def test_smart_configuration_follows_the_base_url(auth_app):
    async with http_for(auth_app, "https://gw.example.cn:8443/fhir") as other:
        doc = (await other.get("/.well-known/smart-configuration")).json()
    assert doc["token_endpoint"] == "https://gw.example.cn:8443/fhir/auth/token"
    assert doc["jwks_uri"] == "https://gw.example.cn:8443/fhir/auth/jwks"


async def test_auth_off_has_no_smart_configuration(client):
    # `client`: the session app of tests/conftest.py, authentication off.
    r = await client.get("/.well-known/smart-configuration")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].split(";")[0] == FHIR_JSON
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "not-found"
    r = await client.get("/auth/jwks")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = await client.post("/auth/token", data={"grant_type": "client_credentials"})
    assert r.status_code == 404
    assert "access_token" not in r.json()
    # ... and FHIR needs no token there.
    assert (await client.get("/Patient")).status_code == 200


async def test_jwks_publishes_the_public_signing_keys(http, register):
    client = await register(alg="ES384")
    token = await token_for(http, client)
    r = await http.get("/auth/jwks")  # public: no token
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["crv"] == "P-384" for k in keys)
    assert all("d" not in k for k in keys), "a private key part is published"
    assert all(k.get("kid") and k.get("alg") == "ES384" for k in keys)
    kid = header_of(token)["kid"]
    assert kid in {k["kid"] for k in keys}
    # Anyone holding the published keys can verify the token offline.
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": keys}), algorithms=["ES384"])
    assert decoded.claims["sub"] == client.client_id


async def test_capability_statement_is_public(http):
    r = await http.get("/metadata")
    assert r.status_code == 200, r.text
    statement = r.json()
    assert statement["resourceType"] == "CapabilityStatement"
    security = statement["rest"][0]["security"]
    codes = [c["code"] for s in security["service"] for c in s["coding"]]
    assert "SMART-on-FHIR" in codes
    oauth = next(
        e for e in security["extension"] if e["url"].endswith("/StructureDefinition/oauth-uris")
    )
    assert {"url": "token", "valueUri": TOKEN_URL} in oauth["extension"]
    r = await http.head("/metadata")
    assert r.status_code == 200
    # Nothing else is public.
    assert_unauthorized(await http.get("/Patient"))
    assert_unauthorized(await http.get("/"))


# --- the backend-services flow ---------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_client_credentials_flow(http, register, alg):
    client = await register(role="admin", organization="Organization/org-a", alg=alg)
    r = await http.post("/auth/token", data=client.form("system/*.cruds"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    assert r.headers.get("cache-control") == "no-store"  # RFC 6749 §5.1
    assert r.headers.get("pragma") == "no-cache"
    answer = r.json()
    assert answer["token_type"].lower() == "bearer"
    assert answer["expires_in"] == 300  # GATEWAY_AUTH_TOKEN_LIFETIME default
    assert perms_of(answer["scope"]) == {"*": set("cruds")}
    assert "refresh_token" not in answer  # backend services: no refresh tokens

    token = answer["access_token"]
    header, claims = header_of(token), claims_of(token)
    assert header["alg"] == "ES384" and header["kid"]
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["aud"] == BASE
    assert claims["organization"] == "Organization/org-a" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - now()) <= 5
    assert claims["jti"]

    pid = await create_patient(http, token)
    r = await http.get(f"/Patient/{pid}", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["name"][0]["family"] == "Zhang"
    r = await http.get("/Patient", params={"_id": pid}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["total"] == 1


async def test_access_token_issuer_is_the_advertised_issuer(http, register):
    """RFC 9068 §2.2 / RFC 8414: the access token's iss is the issuer identifier the server
    publishes (the SMART configuration's `issuer`)."""
    issuer = (await http.get("/.well-known/smart-configuration")).json()["issuer"]
    token = await token_for(http, await register())
    assert claims_of(token)["iss"] == issuer


async def test_two_tokens_have_distinct_ids(http, register):
    client = await register()
    a, b = await token_for(http, client), await token_for(http, client)
    assert a != b and claims_of(a)["jti"] != claims_of(b)["jti"]


async def test_bearer_scheme_is_case_insensitive(http, register):
    token = await token_for(http, await register())
    r = await http.get("/Patient", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200, r.text


async def test_form_with_charset_parameter(http, register):
    client = await register()
    r = await http.post(
        "/auth/token",
        content=httpx.QueryParams(client.form()).__str__(),
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert r.status_code == 200, r.text


async def test_assertion_audience_as_array(http, register):
    # RFC 7519 §4.1.3: aud may be an array containing the token endpoint.
    client = await register()
    assertion = signed_assertion(client, client.key, aud=[TOKEN_URL])
    r = await http.post("/auth/token", data=token_form(assertion))
    assert r.status_code == 200, r.text


async def test_assertion_within_clock_skew_is_accepted(http, register, auth_app):
    # Expired by less than the tolerated skew: still accepted.
    client = await register()
    skew = auth_app.state.tokens.skew
    assert skew >= 10
    assertion = signed_assertion(client, client.key, exp=now() - skew // 2)
    r = await http.post("/auth/token", data=token_form(assertion))
    assert r.status_code == 200, r.text


# --- scopes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("system/Patient.read", {"Patient": set("rs")}),
        ("system/Observation.write", {"Observation": set("cud")}),
        ("system/*.read", {"*": set("rs")}),
        ("system/*.*", {"*": set("cruds")}),
        (
            "system/Patient.read system/Observation.write",
            {"Patient": set("rs"), "Observation": set("cud")},
        ),
    ],
    ids=["Patient.read", "Observation.write", "*.read", "*.*", "two"],
)
async def test_v1_scopes(http, register, requested, expected):
    client = await register(role="admin")
    r = await http.post("/auth/token", data=client.form(requested))
    assert r.status_code == 200, r.text
    assert perms_of(r.json()["scope"]) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("system/Patient.rs", {"Patient": set("rs")}),
        ("system/Patient.r", {"Patient": set("r")}),
        ("system/Observation.cu", {"Observation": set("cu")}),
        ("system/*.cruds", {"*": set("cruds")}),
        ("system/*.s", {"*": set("s")}),
    ],
)
async def test_v2_scopes(http, register, requested, expected):
    client = await register(role="admin")
    r = await http.post("/auth/token", data=client.form(requested))
    assert r.status_code == 200, r.text
    assert perms_of(r.json()["scope"]) == expected


async def test_v1_read_scope_reads_and_searches_but_does_not_write(http, register):
    token = await token_for(http, await register(), "system/Patient.read")
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    r = await http.get("/Patient/nobody", headers=bearer(token))
    assert r.status_code == 404, r.text  # allowed to read; there is nothing
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_forbidden(r)
    assert_forbidden(await http.get("/Observation", headers=bearer(token)))


async def test_v2_read_without_search(http, register):
    writer = await token_for(http, await register())
    pid = await create_patient(http, writer)
    token = await token_for(http, await register(), "system/Patient.r")
    assert (await http.get(f"/Patient/{pid}", headers=bearer(token))).status_code == 200
    assert_forbidden(await http.get("/Patient", headers=bearer(token)))


async def test_v2_create_only_scope_may_create(http, register):
    """SMART v2: `c` is the permission to create; a write-only feed (no r, no s) creates."""
    token = await token_for(http, await register(), "system/Patient.c")
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert r.status_code == 201, r.text


async def test_v2_create_without_update(http, register):
    token = await token_for(http, await register(), "system/Patient.crs")
    pid = await create_patient(http, token)
    r = await http.put(
        f"/Patient/{pid}",
        json={**PATIENT, "id": pid, "gender": "male"},
        headers={**bearer(token), "content-type": FHIR_JSON},
    )
    assert_forbidden(r)
    assert_forbidden(await http.delete(f"/Patient/{pid}", headers=bearer(token)))


async def test_scope_escalation_wildcard_request_gets_only_what_is_registered(http, register):
    client = await register(role="admin", scopes="system/Patient.rs")
    r = await http.post("/auth/token", data=client.form("system/*.cruds"))
    assert r.status_code == 200, r.text
    assert perms_of(r.json()["scope"]) == {"Patient": set("rs")}
    token = r.json()["access_token"]
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_forbidden(r)
    assert_forbidden(await http.get("/Observation", headers=bearer(token)))


async def test_scope_escalation_mixed_request_is_narrowed(http, register):
    client = await register(role="admin", scopes="system/Patient.rs")
    r = await http.post(
        "/auth/token", data=client.form("system/Patient.cruds system/Observation.rs")
    )
    assert r.status_code == 200, r.text
    assert perms_of(r.json()["scope"]) == {"Patient": set("rs")}
    token = r.json()["access_token"]
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_forbidden(r)


async def test_role_scopes_bound_an_unregistered_scope(http, register):
    # platform: the role's scopes are system/*.rs and its own Subscriptions
    # (system/Subscription.cud, profiles/policy/access.yaml).
    client = await register(role="platform")
    r = await http.post("/auth/token", data=client.form("system/*.cruds"))
    assert r.status_code == 200, r.text
    assert perms_of(r.json()["scope"]) == {"*": set("rs"), "Subscription": set("cud")}
    token = r.json()["access_token"]
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_forbidden(r)


@pytest.mark.parametrize(
    "requested",
    [
        "system/Observation.rs",
        "system/Patient.c",
        "system/Patient.write",
        "patient/Patient.read",
        "user/Patient.rs",
        "system/Patient.sr",
        "openid fhirUser",
    ],
)
async def test_nothing_grantable_is_invalid_scope(http, register, requested):
    client = await register(role="admin", scopes="system/Patient.rs")
    r = await http.post("/auth/token", data=client.form(requested))
    assert_oauth_error(r, 400, "invalid_scope")


async def test_no_scope_is_refused(http, register):
    client = await register()
    form = client.form()
    del form["scope"]
    r = await http.post("/auth/token", data=form)
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("invalid_scope", "invalid_request")
    assert "access_token" not in r.json()


# --- tampered client assertions --------------------------------------------------------------
def _alg_none(c: SmartClient, skew: int) -> str:
    return unsigned(
        {"kid": c.key.kid, "typ": "JWT"},
        {
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": TOKEN_URL,
            "exp": now() + 240,
            "jti": str(uuid.uuid4()),
        },
    )


def _hs256_public_key(c: SmartClient, skew: int) -> str:
    return hs256(
        {"kid": c.key.kid, "typ": "JWT"},
        {
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": TOKEN_URL,
            "exp": now() + 240,
            "jti": str(uuid.uuid4()),
        },
        c.key.as_pem(private=False),
    )


ASSERTION_TAMPERING = {
    "alg-none": _alg_none,
    "hs256-with-public-key": _hs256_public_key,
    "wrong-key-same-kid": lambda c, s: signed_assertion(c, other_key_like(c.key, c.key.kid)),
    "unregistered-kid": lambda c, s: signed_assertion(
        c, k := other_key_like(c.key, "not-registered"), {"alg": c.alg, "kid": k.kid}
    ),
    "missing-kid": lambda c, s: signed_assertion(c, c.key, {"alg": c.alg, "typ": "JWT"}),
    "rs256-not-allowed": lambda c, s: signed_assertion(
        c,
        c.key if isinstance(c.key, RSAKey) else RSAKey.generate_key(2048),
        {"alg": "RS256", "kid": c.key.kid},
    ),
    "bad-signature": lambda c, s: flip_signature(signed_assertion(c, c.key)),
    "expired": lambda c, s: signed_assertion(c, c.key, exp=now() - s - 30),
    "exp-more-than-5-minutes-ahead": lambda c, s: signed_assertion(
        c, c.key, exp=now() + 300 + s + 60
    ),
    "exp-an-hour-ahead": lambda c, s: signed_assertion(c, c.key, exp=now() + 3600),
    "not-yet-valid": lambda c, s: signed_assertion(c, c.key, nbf=now() + s + 60),
    "wrong-aud": lambda c, s: signed_assertion(c, c.key, aud="http://testserver/other/auth/token"),
    "aud-is-the-fhir-base": lambda c, s: signed_assertion(c, c.key, aud=BASE),
    "iss-is-not-sub": lambda c, s: signed_assertion(c, c.key, sub="someone-else"),
    "sub-missing": lambda c, s: signed_assertion(c, c.key, sub=None),
    "exp-missing": lambda c, s: signed_assertion(c, c.key, exp=None),
    "jti-missing": lambda c, s: signed_assertion(c, c.key, jti=None),
    "unknown-client": lambda c, s: signed_assertion(c, c.key, iss="nobody", sub="nobody"),
    "not-a-jwt": lambda c, s: "not-a-jwt",
    "empty": lambda c, s: "",
}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_assertion_helper_is_accepted(http, register, alg):
    """The control for the tampering cases: the same construction, untampered, works."""
    client = await register(alg=alg)
    r = await http.post("/auth/token", data=token_form(signed_assertion(client, client.key)))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
@pytest.mark.parametrize("case", list(ASSERTION_TAMPERING))
async def test_tampered_assertion_is_invalid_client(http, register, auth_app, case, alg):
    client = await register(alg=alg)
    assertion = ASSERTION_TAMPERING[case](client, auth_app.state.tokens.skew)
    r = await http.post("/auth/token", data=token_form(assertion))
    assert_oauth_error(r, 401, "invalid_client")
    # The client itself is fine: a proper assertion still gets a token.
    assert (await http.post("/auth/token", data=client.form())).status_code == 200


async def test_missing_assertion_is_invalid_client(http, register):
    client = await register()
    form = client.form()
    del form["client_assertion"]
    assert_oauth_error(await http.post("/auth/token", data=form), 401, "invalid_client")


async def test_disabled_client_gets_no_token(http, register, auth_app):
    client = await register()
    assert (await http.post("/auth/token", data=client.form())).status_code == 200
    assert await auth_app.state.tokens.clients.disable(client.client_id) is True
    r = await http.post("/auth/token", data=client.form())
    assert_oauth_error(r, 401, "invalid_client")


async def test_client_with_jwks_uri(http, auth_app):
    """A client registered with a jwks_uri: its keys are fetched (httpx) and cached."""
    key = new_key("ES384")
    uri = "https://client.example.org/.well-known/jwks.json"
    fetched: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json={"keys": [key.as_dict(private=False)]})

    tokens = auth_app.state.tokens
    saved = tokens.remote
    tokens.remote = RemoteKeys(httpx.AsyncClient(transport=httpx.MockTransport(serve)))
    try:
        client_id = f"uri-client-{uuid.uuid4().hex[:6]}"
        await tokens.clients.add(client_id, "Organization/org-a", "admin", jwks_uri=uri)
        client = SmartClient(client_id, key, "ES384", "Organization/org-a", "admin")
        for _ in range(2):
            r = await http.post("/auth/token", data=client.form())
            assert r.status_code == 200, r.text
        assert fetched == [uri]  # cached after the first fetch
        # A key that is not in the client's set, same kid: refused.
        forged = signed_assertion(client, other_key_like(key, key.kid))
        assert_oauth_error(
            await http.post("/auth/token", data=token_form(forged)), 401, "invalid_client"
        )
    finally:
        await tokens.remote.http.aclose()
        tokens.remote = saved


async def test_client_jwks_uri_unreachable_is_invalid_client(http, auth_app):
    tokens = auth_app.state.tokens
    saved = tokens.remote
    tokens.remote = RemoteKeys(
        httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    )
    try:
        key = new_key("RS384")
        client_id = f"uri-client-{uuid.uuid4().hex[:6]}"
        await tokens.clients.add(
            client_id, "Organization/org-a", "admin", jwks_uri="https://down.example.org/jwks"
        )
        client = SmartClient(client_id, key, "RS384", "Organization/org-a", "admin")
        r = await http.post("/auth/token", data=client.form())
        assert_oauth_error(r, 401, "invalid_client")
    finally:
        await tokens.remote.http.aclose()
        tokens.remote = saved


# --- replay ----------------------------------------------------------------------------------
async def test_reused_assertion_is_refused(http, register):
    client = await register()
    form = client.form()
    first = await http.post("/auth/token", data=form)
    assert first.status_code == 200, first.text
    again = await http.post("/auth/token", data=form)
    assert_oauth_error(again, 401, "invalid_client")


async def test_reused_jti_in_a_new_assertion_is_refused(http, register):
    client = await register()
    jti = str(uuid.uuid4())
    r = await http.post("/auth/token", data=client.form(jti=jti))
    assert r.status_code == 200, r.text
    r = await http.post("/auth/token", data=client.form(jti=jti, exp=now() + 200))
    assert_oauth_error(r, 401, "invalid_client")


async def test_replay_within_the_clock_skew_is_refused(http, register, auth_app):
    """An assertion past its exp but inside the tolerated skew is still accepted once; its jti
    must be remembered as long as the assertion is acceptable (exp + skew), so a replay of it
    is refused too."""
    client = await register()
    skew = auth_app.state.tokens.skew
    form = token_form(signed_assertion(client, client.key, exp=now() - skew // 2))
    first = await http.post("/auth/token", data=form)
    assert first.status_code == 200, first.text
    await asyncio.sleep(0.05)
    again = await http.post("/auth/token", data=form)
    assert_oauth_error(again, 401, "invalid_client")


async def test_replay_just_after_exp_is_refused(http, register):
    """exp a moment ahead: used once, replayed after exp (still inside the skew)."""
    client = await register()
    form = token_form(signed_assertion(client, client.key, exp=now() + 1))
    first = await http.post("/auth/token", data=form)
    assert first.status_code == 200, first.text
    await asyncio.sleep(2.2)
    assert_oauth_error(await http.post("/auth/token", data=form), 401, "invalid_client")


async def test_long_jti_is_not_a_server_error(http, register, auth_app):
    """RFC 7519 sets no length on jti: a long one is accepted (and then refused when replayed)
    or refused as invalid_client, never a 500."""
    client = await register()
    form = token_form(signed_assertion(client, client.key, jti="j" * 600))
    transport = httpx.ASGITransport(app=auth_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as plain:
        first = await plain.post("/auth/token", data=form)
    assert first.status_code in (200, 401), (first.status_code, first.text)
    if first.status_code == 200:
        assert_oauth_error(await http.post("/auth/token", data=form), 401, "invalid_client")
    else:
        assert_oauth_error(first, 401, "invalid_client")


async def test_long_client_id_is_invalid_client(http, register):
    client = await register()
    who = "c" * 300
    assertion = signed_assertion(client, client.key, iss=who, sub=who)
    assert_oauth_error(
        await http.post("/auth/token", data=token_form(assertion)), 401, "invalid_client"
    )


async def test_fractional_exp_is_a_numeric_date(http, register):
    """RFC 7519 §2: a NumericDate may have a fraction (clients computing time.time() + 240)."""
    client = await register()
    assertion = signed_assertion(client, client.key, exp=time.time() + 120.5)
    r = await http.post("/auth/token", data=token_form(assertion))
    assert r.status_code == 200, r.text


async def test_concurrent_replays_issue_exactly_one_token(http, register):
    client = await register()
    form = client.form()
    answers = await asyncio.gather(*(http.post("/auth/token", data=form) for _ in range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [401] * 7, [r.text for r in answers]


async def test_replay_is_refused_on_another_replica(http, register, database_url):
    """Replicas share the used jti values through the database."""
    client = await register()
    form = client.form()
    assert (await http.post("/auth/token", data=form)).status_code == 200
    async with gateway_app(database_url) as replica, http_for(replica) as other:
        assert_oauth_error(await other.post("/auth/token", data=form), 401, "invalid_client")


async def test_replay_refused_with_redis(database_url):
    redis_url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if not redis_url:
        if IN_CI:
            pytest.fail("GATEWAY_TEST_REDIS_URL is not set: CI must provide Redis")
        pytest.skip("GATEWAY_TEST_REDIS_URL not set: Redis tests skipped")
    async with gateway_app(database_url, redis_url=redis_url) as application:
        await truncate_all(application.state.core.store.engine)
        store = application.state.tokens.clients
        key = new_key("ES384")
        client = SmartClient(
            f"redis-{uuid.uuid4().hex[:8]}", key, "ES384", "Organization/o", "admin"
        )
        await store.add(client.client_id, client.organization, "admin", jwks=client.public_jwks())
        async with http_for(application) as http:
            form = client.form()
            jti = claims_of(form["client_assertion"])["jti"]
            first = await http.post("/auth/token", data=form)
            assert first.status_code == 200, first.text
            assert_oauth_error(await http.post("/auth/token", data=form), 401, "invalid_client")
            # The used jti lives in Redis, with the assertion's remaining lifetime...
            redis = application.state.tokens.replay.redis
            ttl = await redis.pttl(f"gateway:jti:{client.client_id} {jti}")
            skew = application.state.tokens.skew
            assert 230_000 < ttl <= (240 + skew + 1) * 1000
            # ... not in the database.
            async with application.state.core.store.engine.connect() as conn:
                rows = (await conn.execute(select(auth_jti.c.jti))).all()
            assert rows == []
            # Concurrent replays: one token.
            form = client.form()
            answers = await asyncio.gather(*(http.post("/auth/token", data=form) for _ in range(6)))
            assert sorted(r.status_code for r in answers) == [200] + [401] * 5
            # An assertion accepted inside the clock skew: its replay is refused as well.
            late = token_form(signed_assertion(client, key, exp=now() - skew // 2))
            assert (await http.post("/auth/token", data=late)).status_code == 200
            await asyncio.sleep(0.05)
            assert_oauth_error(await http.post("/auth/token", data=late), 401, "invalid_client")


async def test_token_endpoint_answers_503_while_the_replay_store_is_away(database_url):
    """Redis configured but unreachable: the gateway cannot tell a replay, so it issues no
    token (fail closed), and says "not now" (503, Retry-After), not 500."""
    async with gateway_app(database_url, redis_url="redis://127.0.0.1:1/0") as application:
        await truncate_all(application.state.core.store.engine)
        key = new_key("ES384")
        client = SmartClient(
            f"away-{uuid.uuid4().hex[:8]}", key, "ES384", "Organization/o", "admin"
        )
        store = application.state.tokens.clients
        await store.add(client.client_id, client.organization, "admin", jwks=client.public_jwks())
        async with http_for(application) as http:
            r = await http.post("/auth/token", data=client.form())
    assert_oauth_error(r, 503, "temporarily_unavailable")
    assert int(r.headers["retry-after"]) > 0
    assert r.headers["cache-control"] == "no-store"


# --- tampered access tokens on FHIR requests -------------------------------------------------
async def _tampered_payload(auth_app, client, http) -> str:
    token = await token_for(http, client, "system/Patient.rs")
    head, payload, sig = token.split(".")
    claims = json.loads(unb64url(payload))
    claims["scope"] = "system/*.cruds"
    return f"{head}.{b64url_json(claims)}.{sig}"


async def _other_key_gateway_kid(auth_app, client, http) -> str:
    signing = await auth_app.state.tokens.keys.signing_key()
    forged = ECKey.generate_key("P-384", parameters={"kid": signing.kid}, private=True)
    return await mint(auth_app, client, key=forged)


async def _alg_none_token(auth_app, client, http) -> str:
    real = await mint(auth_app, client)
    return unsigned(header_of(real), claims_of(real))


async def _hs256_gateway_public_key(auth_app, client, http) -> str:
    signing = await auth_app.state.tokens.keys.signing_key()
    real = await mint(auth_app, client)
    return hs256(header_of(real), claims_of(real), signing.as_pem(private=False))


async def _expired(auth_app, client, http) -> str:
    skew = auth_app.state.tokens.skew
    t = now() - skew - 400
    return await mint(auth_app, client, iat=t, nbf=t, exp=t + 300)


async def _not_yet_valid(auth_app, client, http) -> str:
    skew = auth_app.state.tokens.skew
    t = now() + skew + 60
    return await mint(auth_app, client, iat=t, nbf=t, exp=t + 300)


async def _wrong_aud(auth_app, client, http) -> str:
    return await mint(auth_app, client, aud="http://other.example.org/fhir")


async def _minted_for_another_base(auth_app, client, http) -> str:
    other_base = "http://elsewhere.example.org/fhir"
    async with http_for(auth_app, other_base) as other:
        form = client.form(aud=f"{other_base}/auth/token")
        r = await other.post("/auth/token", data=form)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert claims_of(token)["aud"] == other_base
    return token


async def _client_assertion_as_token(auth_app, client, http) -> str:
    return client.assertion(aud=BASE)


async def _unknown_client(auth_app, client, http) -> str:
    return await mint(auth_app, None, sub="no-such-client", client_id="no-such-client")


async def _no_exp(auth_app, client, http) -> str:
    return await mint(auth_app, client, exp=None)


async def _no_sub(auth_app, client, http) -> str:
    return await mint(auth_app, client, sub=None)


async def _unknown_kid(auth_app, client, http) -> str:
    forged = ECKey.generate_key("P-384", parameters={"kid": "made-up"}, private=True)
    return await mint(auth_app, client, key=forged, kid="made-up")


ACCESS_TOKEN_TAMPERING = {
    "payload-modified": _tampered_payload,
    "other-key-gateway-kid": _other_key_gateway_kid,
    "alg-none": _alg_none_token,
    "hs256-with-gateway-public-key": _hs256_gateway_public_key,
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "wrong-aud": _wrong_aud,
    "minted-for-another-base-url": _minted_for_another_base,
    "client-assertion-as-token": _client_assertion_as_token,
    "unknown-client": _unknown_client,
    "no-exp": _no_exp,
    "no-sub": _no_sub,
    "unknown-kid": _unknown_kid,
}


@pytest.mark.parametrize("case", list(ACCESS_TOKEN_TAMPERING))
async def test_tampered_access_token_is_401(http, register, auth_app, case):
    client = await register(role="admin")
    token = await ACCESS_TOKEN_TAMPERING[case](auth_app, client, http)
    assert_unauthorized(await http.get("/Patient", headers=bearer(token)))
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_unauthorized(r)
    # Nothing was written.
    good = await token_for(http, client)
    r = await http.get("/Patient", headers=bearer(good))
    assert r.status_code == 200 and r.json()["total"] == 0, r.text


async def test_minted_token_helper_is_accepted(http, register, auth_app):
    """The control for the tampering cases: the same construction, untampered, is accepted."""
    client = await register(role="admin")
    token = await mint(auth_app, client)
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    skew = auth_app.state.tokens.skew
    # Expired, but within the tolerated clock skew: accepted.
    t = now() - 300 - skew // 2
    token = await mint(auth_app, client, iat=t, nbf=t, exp=t + 300)
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer ...",
        "Bearer W10.e30.",  # header [] and payload {}
        "Bearer e30.W10.",  # payload is an array
        "Token abc.def.ghi",
    ],
    ids=[
        "none",
        "basic",
        "bearer-empty",
        "bearer-space",
        "garbage",
        "three-garbage-parts",
        "dots",
        "array-header",
        "array-payload",
        "other-scheme",
    ],
)
async def test_malformed_authorization_is_401(http, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    assert_unauthorized(await http.get("/Patient", headers=headers))
    assert_unauthorized(await http.get("/Patient/123", headers=headers))


async def test_invalid_token_challenge_names_the_error(http, register, auth_app):
    """RFC 6750 §3.1: a token that is not valid is answered with error="invalid_token"."""
    token = await _expired(auth_app, await register(), http)
    r = await http.get("/Patient", headers=bearer(token))
    assert_unauthorized(r)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_missing_token_challenge_has_no_error_code(http):
    """RFC 6750 §3.1: a request without any authentication information SHOULD NOT get an
    error code in its challenge (the client may not know authentication is needed)."""
    r = await http.get("/Patient")
    assert_unauthorized(r)
    assert "error=" not in r.headers["www-authenticate"], r.headers["www-authenticate"]


async def test_token_of_a_client_disabled_after_issue(http, register, auth_app):
    client = await register()
    token = await token_for(http, client)
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    assert await auth_app.state.tokens.clients.disable(client.client_id) is True
    assert_unauthorized(await http.get("/Patient", headers=bearer(token)))


async def test_client_disabled_elsewhere_stops_within_the_cache_time(
    http, register, auth_app, monkeypatch
):
    """Disabled by another process (the CLI, another replica): this replica's client cache
    does not hear of it and sees it at its next lookup after CACHE_SECONDS."""
    client = await register()
    token = await token_for(http, client)
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    other = clients_module.ClientStore(auth_app.state.core.store.engine)
    assert await other.disable(client.client_id) is True
    monkeypatch.setattr(clients_module, "CACHE_SECONDS", 0.0)
    assert_unauthorized(await http.get("/Patient", headers=bearer(token)))


# --- token endpoint request errors -----------------------------------------------------------
async def test_wrong_grant_type(http, register):
    client = await register()
    form = {**client.form(), "grant_type": "password"}
    assert_oauth_error(await http.post("/auth/token", data=form), 400, "unsupported_grant_type")
    form = {**client.form(), "grant_type": "authorization_code"}
    assert_oauth_error(await http.post("/auth/token", data=form), 400, "unsupported_grant_type")


async def test_wrong_client_assertion_type(http, register):
    client = await register()
    form = {**client.form(), "client_assertion_type": "urn:ietf:params:oauth:grant-type:saml2"}
    assert_oauth_error(await http.post("/auth/token", data=form), 400, "invalid_request")
    form = client.form()
    del form["client_assertion_type"]
    assert_oauth_error(await http.post("/auth/token", data=form), 400, "invalid_request")


async def test_token_request_must_be_a_form(http, register):
    client = await register()
    r = await http.post("/auth/token", json=client.form())
    assert_oauth_error(r, 400, "invalid_request")
    r = await http.post("/auth/token")
    assert_oauth_error(r, 400, "invalid_request")
    r = await http.post(
        "/auth/token",
        content=httpx.QueryParams(client.form()).__str__(),
        headers={"content-type": "text/plain"},
    )
    assert_oauth_error(r, 400, "invalid_request")


async def test_token_endpoint_refuses_other_methods(http):
    r = await http.get("/auth/token")
    assert r.status_code == 405, r.text
    assert "POST" in r.headers.get("allow", "")
    assert "access_token" not in r.text


async def test_refused_assertions_do_not_block_the_client(http, register):
    """A refused assertion (wrong aud) does not burn its jti: the client may fix and resend."""
    client = await register()
    jti = str(uuid.uuid4())
    bad = signed_assertion(client, client.key, jti=jti, aud=BASE)
    assert_oauth_error(await http.post("/auth/token", data=token_form(bad)), 401, "invalid_client")
    good = signed_assertion(client, client.key, jti=jti)
    assert (await http.post("/auth/token", data=token_form(good))).status_code == 200


# --- key rotation ----------------------------------------------------------------------------
async def test_key_rotation_keeps_old_tokens_valid(http, register, auth_app):
    keys = auth_app.state.tokens.keys
    await fresh_signing_key(auth_app)
    client = await register()
    old = await token_for(http, client)
    old_kid = header_of(old)["kid"]
    assert old_kid == (await keys.signing_key()).kid
    saved = keys.rotation_us
    keys.rotation_us = 0  # every signing now rotates
    try:
        new = await token_for(http, client)
    finally:
        keys.rotation_us = saved
    new_kid = header_of(new)["kid"]
    assert new_kid != old_kid
    # The next tokens are signed by the new key (the rotation period is back to normal).
    assert header_of(await token_for(http, client))["kid"] == new_kid
    assert (await http.get("/Patient", headers=bearer(old))).status_code == 200
    assert (await http.get("/Patient", headers=bearer(new))).status_code == 200
    published = {k["kid"] for k in (await http.get("/auth/jwks")).json()["keys"]}
    assert {old_kid, new_kid} <= published


async def test_keys_are_shared_by_replicas(http, register, auth_app, database_url):
    """A token signed by one replica verifies at another (keys live in the database), and a
    replica rotating makes the others reload."""
    await fresh_signing_key(auth_app)
    client = await register()
    token = await token_for(http, client)
    async with gateway_app(database_url) as replica, http_for(replica) as other:
        assert (await other.get("/Patient", headers=bearer(token))).status_code == 200
        replica_key = await fresh_signing_key(replica)
        r = await other.post("/auth/token", data=client.form())
        assert r.status_code == 200, r.text
        minted_there = r.json()["access_token"]
        assert header_of(minted_there)["kid"] == replica_key.kid
    # auth_app never saw that kid: it reloads the keys and verifies.
    assert (await http.get("/Patient", headers=bearer(minted_there))).status_code == 200


# --- an identity provider's tokens -----------------------------------------------------------
@dataclass
class IdentityProviderDouble:
    """The region's identity provider, outside the project: its keys, served as a JWK Set."""

    key: RSAKey
    published: list = field(default_factory=list)
    fetches: int = 0
    fail: bool = False

    def jwks(self) -> dict:
        return {"keys": [k.as_dict(private=False) for k in self.published]}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == IDP_JWKS_URL, request.url
        self.fetches += 1
        if self.fail:
            return httpx.Response(503)
        return httpx.Response(200, json=self.jwks())

    def token(self, key: RSAKey | None = None, alg: str = "RS256", **claims) -> str:
        key = key or self.key
        t = now()
        body = {
            "iss": IDP_ISSUER,
            "aud": IDP_AUDIENCE,
            "iat": t,
            "exp": t + 300,
            "jti": str(uuid.uuid4()),  # distinct tokens (RS256 signatures are deterministic)
            "client_id": "regional-app",
            "organization": "Organization/org-idp",
            "role": "admin",
            "scope": "system/*.cruds",
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, body, key, algorithms=[alg])


@pytest.fixture(scope="module")
async def idp_app(database_url):
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"}, private=True)
    idp = IdentityProviderDouble(key, published=[key])
    async with gateway_app(
        database_url,
        auth_idp_issuer=IDP_ISSUER,
        auth_idp_jwks_url=IDP_JWKS_URL,
        auth_idp_audience=IDP_AUDIENCE,
    ) as application:
        tokens = application.state.tokens
        assert tokens.idp is not None and tokens.idp.issuer == IDP_ISSUER
        original = tokens.remote.http
        mock = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
        tokens.remote.http = mock
        try:
            yield application, idp
        finally:
            tokens.remote.http = original
            await mock.aclose()


@pytest.fixture
async def idp_http(idp_app) -> AsyncIterator[tuple[httpx.AsyncClient, IdentityProviderDouble]]:
    application, idp = idp_app
    await truncate_all(application.state.core.store.engine)
    application.state.tokens.clients._cache.clear()
    idp.fail = False
    idp.published = [idp.key]
    async with http_for(application) as c:
        yield c, idp


async def test_idp_token_is_accepted(idp_http):
    http, idp = idp_http
    token = idp.token()
    pid = await create_patient(http, token)
    r = await http.get(f"/Patient/{pid}", headers=bearer(token))
    assert r.status_code == 200, r.text
    r = await http.get("/Patient", headers=bearer(token))
    assert r.status_code == 200 and r.json()["total"] == 1
    assert idp.fetches >= 1


async def test_idp_jwks_is_cached(idp_http):
    http, idp = idp_http
    assert (await http.get("/Patient", headers=bearer(idp.token()))).status_code == 200
    before = idp.fetches
    for _ in range(3):
        assert (await http.get("/Patient", headers=bearer(idp.token()))).status_code == 200
    assert idp.fetches == before


async def test_idp_token_scopes_apply(idp_http):
    http, idp = idp_http
    token = idp.token(scope="system/Patient.rs")
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200
    r = await http.post(
        "/Patient", json=PATIENT, headers={**bearer(token), "content-type": FHIR_JSON}
    )
    assert_forbidden(r)
    # A scope claim given as a JSON array works too.
    token = idp.token(scope=["system/Patient.rs"])
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200


async def test_idp_claims_map_to_organisation_and_role(idp_http):
    """role → the access policy (sandbox: only what its organisation wrote); organization →
    whose writes those are."""
    http, idp = idp_http
    pid = await create_patient(http, idp.token(role="admin", organization="Organization/org-x"))
    sandbox_x = idp.token(role="sandbox", organization="Organization/org-x")
    sandbox_y = idp.token(role="sandbox", organization="Organization/org-y")
    admin_y = idp.token(role="admin", organization="Organization/org-y")
    assert (await http.get(f"/Patient/{pid}", headers=bearer(sandbox_x))).status_code == 200
    assert (await http.get(f"/Patient/{pid}", headers=bearer(sandbox_y))).status_code == 404
    assert (await http.get(f"/Patient/{pid}", headers=bearer(admin_y))).status_code == 200


async def test_idp_token_wrong_audience(idp_http):
    http, idp = idp_http
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token(aud="someone-else"))))
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token(aud=BASE))))
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token(aud=None))))


async def test_idp_token_unknown_key(idp_http):
    http, idp = idp_http
    unknown = RSAKey.generate_key(2048, parameters={"kid": "idp-key-unknown"}, private=True)
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token(key=unknown))))
    forged = RSAKey.generate_key(2048, parameters={"kid": idp.key.kid}, private=True)
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token(key=forged))))


async def test_idp_token_tampering(idp_http):
    http, idp = idp_http
    real = idp.token()
    head, payload, sig = real.split(".")
    cases = {
        "alg-none": unsigned(header_of(real), claims_of(real)),
        "hs256-public-key": hs256(header_of(real), claims_of(real), idp.key.as_pem(private=False)),
        "payload-modified": f"{head}.{b64url_json({**claims_of(real), 'role': 'x'})}.{sig}",
        "expired": idp.token(iat=now() - 1000, exp=now() - 500),
        "no-exp": idp.token(exp=None),
        "no-role": idp.token(role=None),
        "no-client": idp.token(client_id=None),
    }
    for name, token in cases.items():
        r = await http.get("/Patient", headers=bearer(token))
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert_unauthorized(r)


async def test_idp_key_rotation_is_fetched(idp_http, monkeypatch):
    http, idp = idp_http
    assert (await http.get("/Patient", headers=bearer(idp.token()))).status_code == 200
    monkeypatch.setattr(remote_keys_module, "_MIN_REFETCH_SECONDS", 0.0)
    rotated = RSAKey.generate_key(2048, parameters={"kid": "idp-key-2"}, private=True)
    idp.published = [idp.key, rotated]
    before = idp.fetches
    r = await http.get("/Patient", headers=bearer(idp.token(key=rotated)))
    assert r.status_code == 200, r.text
    assert idp.fetches == before + 1


async def test_idp_unavailable_is_503(idp_app):
    application, idp = idp_app
    tokens = application.state.tokens
    saved = tokens.remote
    mock = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    tokens.remote = RemoteKeys(mock)  # nothing cached
    idp.fail = True
    try:
        async with http_for(application) as http:
            r = await http.get("/Patient", headers=bearer(idp.token()))
        assert r.status_code == 503, r.text
        assert r.json()["resourceType"] == "OperationOutcome"
    finally:
        idp.fail = False
        tokens.remote = saved
        await mock.aclose()


async def test_gateway_tokens_still_work_beside_the_idp(idp_http, idp_app):
    http, idp = idp_http
    application, _ = idp_app
    store = application.state.tokens.clients
    key = new_key("RS384")
    client = SmartClient("beside-idp", key, "RS384", "Organization/org-a", "admin")
    await store.add(client.client_id, client.organization, "admin", jwks=client.public_jwks())
    token = await token_for(http, client)
    assert (await http.get("/Patient", headers=bearer(token))).status_code == 200


async def test_idp_token_refused_where_no_idp_is_configured(http, idp_app):
    _, idp = idp_app
    assert_unauthorized(await http.get("/Patient", headers=bearer(idp.token())))


async def test_idp_without_configured_audience_still_checks_the_audience(database_url):
    """RFC 9068 §4: a resource server MUST check that aud names it. Without
    GATEWAY_AUTH_IDP_AUDIENCE the gateway's own base URL is the audience to expect; a token the
    provider issued for another service is refused."""
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"}, private=True)
    idp = IdentityProviderDouble(key, published=[key])
    async with gateway_app(
        database_url, auth_idp_issuer=IDP_ISSUER, auth_idp_jwks_url=IDP_JWKS_URL
    ) as application:
        tokens = application.state.tokens
        original = tokens.remote.http
        tokens.remote.http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
        try:
            async with http_for(application) as http:
                r = await http.get("/Patient", headers=bearer(idp.token(aud="billing-service")))
                assert_unauthorized(r)
        finally:
            await tokens.remote.http.aclose()
            tokens.remote.http = original
