"""The OAuth side of HTTP: the token endpoint, the SMART configuration, the gateway's public
keys, and the authentication of every FHIR request (a Bearer token → a RequestContext that
carries the client's access)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.access.audit import AuditSlot, audit_event
from gateway.auth.tokens import CLIENT_ALGS, OAuthError
from gateway.store import errors as store_errors
from gateway.vocab import outcomes
from gateway.vocab.context import RequestContext

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# What a FHIR request may reach without a token: the CapabilityStatement (SMART: public).
PUBLIC_PATHS = frozenset({"metadata"})
SCOPES_SUPPORTED = [
    "system/*.read",
    "system/*.write",
    "system/*.rs",
    "system/*.cruds",
    "system/Patient.read",
    "system/Patient.rs",
]


def token_url(base: str) -> str:
    return f"{base}/auth/token"


async def token_endpoint(request: Request, base: str) -> Response:
    """POST [base]/auth/token (RFC 6749 §4.4, RFC 7523, SMART Backend Services)."""
    state = request.app.state
    if state.tokens is None:
        return _oauth_error(OAuthError("invalid_request", "authentication is off", 404))
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _oauth_error(
            OAuthError("invalid_request", "the token request is a form (x-www-form-urlencoded)")
        )
    body = await request.body()
    if len(body) > 64 * 1024:
        return _oauth_error(OAuthError("invalid_request", "the token request is too large"))
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return _oauth_error(OAuthError("invalid_request", "the form is not UTF-8"))
    try:
        answer = await state.tokens.issue(form, token_url(base), audience=base)
    except OAuthError as err:
        return _oauth_error(err)
    except Exception as exc:
        if not store_errors.unavailable(exc):
            raise
        # The client store, the keys or the replay store (Redis) is away: "not now", not 500.
        busy = OAuthError("temporarily_unavailable", "retry the token request shortly", 503)
        return _oauth_error(busy)
    return JSONResponse(answer, headers=_NO_STORE)


def _oauth_error(err: OAuthError) -> Response:
    headers = dict(_NO_STORE)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="token"'  # RFC 6749 §5.2 invalid_client
    if err.status == 503:
        headers["Retry-After"] = str(store_errors.RETRY_AFTER_SECONDS)
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def smart_configuration(request: Request, base: str) -> Response:
    """GET [base]/.well-known/smart-configuration (SMART App Launch 2.x)."""
    if request.app.state.tokens is None:
        raise outcomes.error(
            404, "not-found", "GW-1043", "Authentication is off: no SMART configuration"
        )
    return JSONResponse(
        {
            "issuer": base,
            "jwks_uri": f"{base}/auth/jwks",
            "token_endpoint": token_url(base),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": CLIENT_ALGS,
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": SCOPES_SUPPORTED,
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }
    )


async def jwks(request: Request) -> Response:
    """GET [base]/auth/jwks: the public keys the gateway signs access tokens with."""
    tokens = request.app.state.tokens
    if tokens is None:
        raise outcomes.error(404, "not-found", "GW-1043", "Authentication is off: no keys")
    return JSONResponse(await tokens.keys.public_jwks())


async def request_context(request: Request, path: str, base: str) -> RequestContext:
    """Who is asking: anonymous and unrestricted with authentication off; otherwise the
    verified token's client, with its access (401 without a valid token)."""
    state = request.app.state
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    tokens = getattr(state, "tokens", None)  # an app whose lifespan did not run: none
    if tokens is None or (path.strip("/") in PUBLIC_PATHS and request.method in ("GET", "HEAD")):
        return RequestContext(request_id=request_id)
    principal = await tokens.verify(request.headers.get("authorization"), base)
    await state.rate_limiter.check(principal.client_id)
    ctx: Any = await state.access.context(
        principal.client_id,
        principal.organization,
        principal.role,
        principal.scopes,
        request_id,
    )
    return ctx


def record_access(request: Request, ctx: RequestContext | None, status: int) -> None:
    """One AuditEvent per request, with authentication on: a successful write recorded its
    own in its transaction; everything else (reads, failures, refused tokens) is queued."""
    audit_log = getattr(request.app.state, "audit_log", None)
    if audit_log is None:
        return
    if ctx is None or ctx.audit is None:
        if ctx is not None:
            return  # a public request (the CapabilityStatement)
        ctx = RequestContext(principal="(unauthenticated)", audit=AuditSlot())
    slot = ctx.audit
    if slot.recorded_in_transaction and status < 400:
        return
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    audit_log.record(audit_event(ctx, slot, request.method, url, status))
