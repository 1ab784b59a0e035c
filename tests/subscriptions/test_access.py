"""A subscriber is notified of what its client may see, no more: the access policies apply to
matching and to full-resource payloads, and to $status/$events of its Subscription.

The shipped access.yaml lets no role but admin write Subscription resources yet; this test runs
on a copy that lets the sandbox role write them (a sandbox sees the residents it registered)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.settings import PROJECT_ROOT
from tests.auth.conftest import BASE, SmartClient, bearer, new_key, token_for
from tests.conftest import fresh_database, running_app, truncate_all
from tests.subscriptions.conftest import FAST
from tests.subscriptions.helpers import patient, subscription, wait_status


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    policy = yaml.safe_load((PROJECT_ROOT / "profiles/policy/access.yaml").read_text("utf-8"))
    policy["roles"]["sandbox"]["write"] = [*policy["roles"]["sandbox"]["write"], "Subscription"]
    path = tmp_path_factory.mktemp("policy") / "access.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), "utf-8")
    return path


@pytest.fixture(scope="module")
async def secured(database_url, policy_file, tmp_path_factory):
    # A database of the module's own: the in-process subscription parts of other tests'
    # gateways (alive for the session, without authentication) would deliver to its receiver.
    async with (
        fresh_database(database_url, tmp_path_factory.mktemp("subdb")) as own,
        running_app(
            own, auth="on", worker_inline="on", access_policy=policy_file, **FAST
        ) as application,
    ):
        yield application


async def _client(app, http, org: str) -> tuple[SmartClient, dict[str, str]]:
    key = new_key("ES384")
    client = SmartClient(f"sandbox-{org}", key, "ES384", f"Organization/{org}", "sandbox")
    await app.state.tokens.clients.add(
        client.client_id, client.organization, "sandbox", jwks=client.public_jwks()
    )
    return client, bearer(await token_for(http, client))


async def test_subscriber_sees_only_what_its_client_may_see(secured, receiver):
    await truncate_all(secured.state.core.store.engine)
    secured.state.tokens.clients._cache.clear()
    transport = httpx.ASGITransport(app=secured)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as http:
        _, a = await _client(secured, http, "org-a")
        _, b = await _client(secured, http, "org-b")
        r = await http.post("/Subscription", json=subscription(receiver.url), headers=a)
        assert r.status_code == 201, r.text
        sub = r.json()

        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, timeout=60, headers=a
        ) as as_a:
            await wait_status(as_a, sub["id"], "active")
        theirs = await http.post("/Patient", json=patient(given="乙方"), headers=b)
        assert theirs.status_code == 201, theirs.text
        ours = await http.post("/Patient", json=patient(given="甲方"), headers=a)
        assert ours.status_code == 201, ours.text
        await receiver.wait(lambda: len(receiver.got) >= 1)
        await asyncio.sleep(0.5)  # org-b's resident, written first, never comes
        assert [g.path for g in receiver.got] == [f"/hook/Patient/{ours.json()['id']}"]
        assert receiver.got[0].body["name"][0]["given"] == ["甲方"]
        assert receiver.numbers() == [1]

        # the other organisation cannot read the Subscription, its status or its events
        r = await http.get(f"/Subscription/{sub['id']}/$status", headers=b)
        assert r.status_code == 404
        r = await http.get(f"/Subscription/{sub['id']}/$events", headers=b)
        assert r.status_code == 404
        r = await http.get(f"/Subscription/{sub['id']}/$status", headers=a)
        assert r.status_code == 200
        # nor may a non-administrator replay dead letters
        r = await http.post(f"/Subscription/{sub['id']}/$replay", headers=a)
        assert r.status_code == 403
