"""`python -m gateway.bench --auth`: what authentication and authorization cost a read and a
search, on PostgreSQL.

One database, rounds of the same requests: the gateway with authentication off; on, as an
admin client (token verification) and as a regional platform client whose access policy picks
residents by division code (the policy's SQL on every request), each without and with the
audit trail (an AuditEvent written for every request). Printed: median and p95 per round, and
the cost over the first round (target: authorization, read p50 ≤ +10%).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey
from rich.table import Table

from gateway.auth.clients import ClientStore
from gateway.bench.clients import Connection, median_p95_ms, run_clients
from gateway.bench.server import gateway_process, throwaway_postgres
from gateway.store.engine import create_engine

HEADERS = {"content-type": "application/fhir+json"}
DIVISION = "https://fhir.jtys.cn/StructureDefinition/cn-admin-division"


def _patient(i: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "name": [{"text": f"张三{i}", "family": "张", "given": [f"三{i}"]}],
            "gender": "male",
            "birthDate": "1960-05-01",
            "address": [
                {
                    "city": "广州市",
                    "extension": [{"url": DIVISION, "valueCode": "440104"}],
                }
            ],
        }
    )


def _register(url: str, clients: list[tuple[str, str, str, ECKey]]) -> None:
    async def run() -> None:
        engine = create_engine(url)
        store = ClientStore(engine)
        for client_id, org, role, key in clients:
            await store.add(client_id, org, role, jwks={"keys": [key.as_dict(private=False)]})
        await engine.dispose()

    asyncio.run(run())


def _token(base: str, client_id: str, key: ECKey) -> str:
    token_url = f"{base}/auth/token"
    assertion = jwt.encode(
        {"alg": "ES384", "kid": key.kid},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "exp": int(time.time()) + 240,
            "jti": str(uuid.uuid4()),
        },
        key,
        algorithms=["ES384"],
    )
    import httpx

    r = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _measure(base: str, ids: list[str], headers: dict[str, str], n: int) -> dict[str, Any]:
    rnd = random.Random(11)
    picks = [rnd.choice(ids) for _ in range(n)]

    def read(c: Connection, i: int) -> None:
        r = c.request("GET", f"Patient/{picks[i]}", headers=headers)
        assert r.status == 200, r.body[:300]

    def search(c: Connection, i: int) -> None:
        r = c.request("GET", f"Patient?given={quote('三')}{i % 500}&_count=20", headers=headers)
        assert r.status == 200, r.body[:300]

    run_clients(base, 1, 200, read)  # warm-up
    _, reads = run_clients(base, 1, n, read)
    _, searches = run_clients(base, 1, n // 2, search)
    return {"read": median_p95_ms(reads), "search": median_p95_ms(searches)}


def main_auth(args: Any, pg_admin: str) -> Table:
    table = Table(title="Authentication and authorization, PostgreSQL, 1 client")
    for col in ("round", "read p50 ms", "read p95 ms", "search p50 ms", "search p95 ms"):
        table.add_column(col, justify="right")
    with throwaway_postgres(pg_admin) as url:
        ids: list[str] = []
        with gateway_process(url, args.workers) as server:

            def post(c: Connection, i: int) -> None:
                r = c.request(
                    "POST", "Patient", _patient(i), {**HEADERS, "Prefer": "return=minimal"}
                )
                assert r.status == 201, r.body[:300]
                ids.append(r.headers["location"].split("/")[-3])

            run_clients(server.base, 4, args.auth_patients, post)
            org = {
                "resourceType": "Organization",
                "id": "bench-platform",
                "name": "平台",
                "address": [{"extension": [{"url": DIVISION, "valueCode": "440100"}]}],
            }
            c = Connection(server.base)
            assert c.request(
                "PUT", "Organization/bench-platform", orjson.dumps(org), HEADERS
            ).status in (200, 201)
            c.close()
            rounds = {"authentication off": _measure(server.base, ids, {}, args.reads)}
        admin_key = ECKey.generate_key("P-384", private=True, auto_kid=True)
        platform_key = ECKey.generate_key("P-384", private=True, auto_kid=True)
        _register(
            url,
            [
                ("bench-admin", "Organization/bench-admin", "admin", admin_key),
                ("bench-platform", "Organization/bench-platform", "platform", platform_key),
            ],
        )
        for audit in ("off", "on"):
            env = {
                "GATEWAY_AUTH": "on",
                "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
                "GATEWAY_AUDIT": "true" if audit == "on" else "false",
            }
            with gateway_process(url, args.workers, env) as server:
                for name, client_id, key in (
                    ("admin", "bench-admin", admin_key),
                    ("platform (division policy)", "bench-platform", platform_key),
                ):
                    auth = {"Authorization": f"Bearer {_token(server.base, client_id, key)}"}
                    label = f"on, {name}, audit {audit}"
                    rounds[label] = _measure(server.base, ids, auth, args.reads)
    base_read = rounds["authentication off"]["read"][0]
    for name, r in rounds.items():
        cost = (
            ""
            if name == "authentication off"
            else f" ({100 * (r['read'][0] / base_read - 1):+.0f}%)"
        )
        table.add_row(
            name,
            f"{r['read'][0]:.2f}{cost}",
            f"{r['read'][1]:.2f}",
            f"{r['search'][0]:.2f}",
            f"{r['search'][1]:.2f}",
        )
    return table
