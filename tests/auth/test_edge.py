"""The edge of access control: rate limits, CORS, the CapabilityStatement's security, and logs
that never hold an identity number whole."""

from __future__ import annotations

import logging
import os

import httpx
import pytest

from gateway.http.rate_limit import RateLimiter
from gateway.vocab import redact
from gateway.vocab.outcomes import OperationOutcomeError
from tests.auth.conftest import BASE, bearer, token_for
from tests.conftest import client_for, need_service, running_app


# --- rate limits --------------------------------------------------------------------------
async def test_in_process_rate_limit_answers_429_with_retry_after():
    limiter = RateLimiter(per_minute=3)
    for _ in range(3):
        await limiter.check("c1")
    with pytest.raises(OperationOutcomeError) as err:
        await limiter.check("c1")
    assert err.value.status == 429
    assert 1 <= int(err.value.headers["Retry-After"]) <= 60
    await limiter.check("c2")  # per client


@pytest.mark.redis
async def test_redis_rate_limit_is_shared_by_replicas():
    import redis.asyncio as aioredis

    url = need_service("GATEWAY_TEST_REDIS_URL", "Redis")
    client = aioredis.from_url(url)
    try:
        one, two = RateLimiter(2, client), RateLimiter(2, client)  # two replicas, one count
        name = f"client-{os.getpid()}-{id(one)}"
        await one.check(name)
        await two.check(name)
        with pytest.raises(OperationOutcomeError):
            await one.check(name)
    finally:
        await client.aclose()


async def test_a_client_over_its_limit_is_throttled_through_the_api(database_url, register):
    async with running_app(database_url, auth="on", rate_limit_per_minute=3) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            store = app.state.tokens.clients
            from tests.auth.conftest import SmartClient, new_key

            me = SmartClient("throttled", new_key("ES384"), "ES384", "Organization/x", "admin")
            await store.add(me.client_id, me.organization, me.role, jwks=me.public_jwks())
            token = await token_for(http, me)
            statuses = [
                (await http.get("/Patient", headers=bearer(token))).status_code for _ in range(4)
            ]
            assert statuses[:3] == [200, 200, 200]
            last = await http.get("/Patient", headers=bearer(token))
            assert last.status_code == 429 and "retry-after" in last.headers
            assert last.json()["resourceType"] == "OperationOutcome"


# --- CORS ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1:5173", True),
        ("https://evil.example", False),
    ],
)
async def test_cors_preflight_is_answered_without_a_token(http, origin, allowed):
    r = await http.options(
        "/Patient",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    if allowed:
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
    else:
        assert "access-control-allow-origin" not in r.headers


async def test_configured_origins_are_allowed(database_url):
    async with running_app(database_url, cors_origins=["https://app.region.example"]) as app:
        async with client_for(app) as c:
            r = await c.get("/metadata", headers={"Origin": "https://app.region.example"})
            assert r.headers["access-control-allow-origin"] == "https://app.region.example"
            r = await c.get("/metadata", headers={"Origin": "https://other.example"})
            assert "access-control-allow-origin" not in r.headers


# --- the CapabilityStatement says how to authenticate ----------------------------------------
async def test_capability_statement_announces_smart_or_development_mode(http, client):
    on = (await http.get("/metadata")).json()["rest"][0]["security"]
    assert on["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in on["extension"][0]["extension"]}
    assert uris["token"] == f"{BASE}/auth/token"
    off = (await client.get("/metadata")).json()["rest"][0]["security"]
    assert "DEVELOPMENT MODE" in off["description"] and "service" not in off


# --- identity numbers in logs -------------------------------------------------------------
def test_identity_numbers_are_masked_in_every_log_record(caplog):
    redact.install()
    log = logging.getLogger("sqlalchemy.engine.Engine")
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        log.info("[parameters: ('urn:oid:2.16.156.10011.1.3', '%s')]", "11010519491231002X")
        try:
            raise ValueError("duplicate key 440104199001011232")
        except ValueError:
            logging.getLogger("gateway").exception("failed for %s", "440104199001011232")
    text = caplog.text
    assert "11010519491231002X" not in text and "110105********002X" in text
    assert "440104199001011232" not in text and "440104********1232" in text
    assert redact.mask("phone 13800138000, order 1234567890123456789") == (
        "phone 13800138000, order 1234567890123456789"
    )


# --- the policy file is checked at start-up -------------------------------------------------
@pytest.mark.parametrize(
    "change, where",
    [
        (lambda t: t.replace("version: 1", "version: 2"), "version"),
        (
            lambda t: t.replace("read: [compartment, directory, own]", "read: [everything]", 1),
            "roles.primary-care.read",
        ),
        (
            lambda t: t.replace(
                "residents: [contracted, registered]", "residents: [contracted, nobody]"
            ),
            "roles.primary-care.residents",
        ),
        (
            lambda t: t.replace("[Organization, Practitioner,", "[Organisation, Practitioner,", 1),
            "directory",
        ),
        (
            lambda t: t.replace("organization={organization}", "organization={organisation}"),
            "selectors.contracted.0.search",
        ),
        (lambda t: t.replace("  admin:\n", "  administrator:\n"), "roles: no policy for admin"),
        (lambda t: t + "\n  oops: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_broken_policy_stops_start_up_naming_the_place(tmp_path, change, where):
    from pathlib import Path

    from gateway.access.policy import PolicyError, load_policy
    from gateway.app import create_app
    from gateway.settings import Settings

    source = Path(__file__).resolve().parents[2] / "profiles" / "policy" / "access.yaml"
    broken = tmp_path / "access.yaml"
    broken.write_text(change(source.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(broken)
    assert where in str(err.value)
    with pytest.raises(PolicyError):
        create_app(Settings(access_policy=broken, _env_file=None))
