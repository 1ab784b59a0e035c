"""`gateway clients add | list | disable`: the registry of backend-services clients."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from gateway.auth.clients import ROLES, ClientError, ClientStore

clients_app = typer.Typer(help="Register, list and disable SMART backend-services clients")


def _store(database_url: str | None) -> ClientStore:
    from gateway.settings import Settings
    from gateway.store.engine import create_engine

    return ClientStore(create_engine(database_url or Settings().database_url))


async def _run(store: ClientStore, work):  # type: ignore[no-untyped-def]
    try:
        return await work(store)
    finally:
        await store.engine.dispose()


@clients_app.command("add")
def add(
    client_id: str = typer.Option(..., "--id", help="The client id (its assertions' iss/sub)"),
    org: str = typer.Option(..., "--org", help="Organization/<id> the client acts for"),
    role: str = typer.Option(..., "--role", help=" | ".join(ROLES)),
    jwks: Path = typer.Option(None, "--jwks", help="File holding the client's public JWK Set"),
    jwks_uri: str = typer.Option(None, "--jwks-uri", help="URL of the client's JWK Set"),
    scope: str = typer.Option(None, "--scope", help="Scopes it may get (default: its role's)"),
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """Register a client bound to an organisation and a role."""
    try:
        keys = json.loads(jwks.read_text(encoding="utf-8")) if jwks else None
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read the JWK Set: {exc}", param_hint="--jwks") from None
    try:
        client = asyncio.run(
            _run(
                _store(database_url),
                lambda s: s.add(client_id, org, role, jwks=keys, jwks_uri=jwks_uri, scopes=scope),
            )
        )
    except ClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"registered {client.client_id}: {client.organization}, role {client.role}")


@clients_app.command("list")
def list_clients(
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """Every registered client."""
    for c in asyncio.run(_run(_store(database_url), lambda s: s.list())):
        keys = c.jwks_uri or f"{len((c.jwks or {}).get('keys', []))} key(s)"
        state = "enabled" if c.enabled else "disabled"
        typer.echo(f"{c.client_id}\t{c.organization}\t{c.role}\t{state}\t{keys}")


@clients_app.command("disable")
def disable(
    client_id: str = typer.Option(..., "--id"),
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """Disable a client: its tokens stop working within seconds, new ones are refused."""
    if not asyncio.run(_run(_store(database_url), lambda s: s.disable(client_id))):
        typer.echo(f"error: no client {client_id}", err=True)
        raise typer.Exit(2)
    typer.echo(f"disabled {client_id}")


@clients_app.command("demo")
def demo(
    keys: Path = typer.Option(..., "--keys", help="Folder for the demo clients' private keys"),
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """One demo client per role (demo-<role>, Organization/demo-<role>), keys generated and
    printed once: on later runs nothing changes."""
    from joserfc.jwk import ECKey

    async def make(store: ClientStore) -> list[str]:
        made = []
        for role in ROLES:
            client_id = f"demo-{role}"
            if await store.get(client_id, fresh=True) is not None:
                continue
            key = ECKey.generate_key("P-384", private=True, auto_kid=True)
            path = keys / f"{client_id}.jwk.json"
            path.write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")
            path.chmod(0o600)
            await store.add(
                client_id,
                f"Organization/demo-{role}",
                role,
                jwks={"keys": [key.as_dict(private=False)]},
            )
            made.append(client_id)
        return made

    keys.mkdir(parents=True, exist_ok=True)
    made = asyncio.run(_run(_store(database_url), make))
    if not made:
        typer.echo("demo clients exist already (their keys are in the keys folder)")
        return
    typer.echo(f"demo clients registered: {', '.join(made)}; private keys in {keys}/")
    typer.echo(
        "get a token:  gateway clients token --id demo-admin "
        f"--key {keys}/demo-admin.jwk.json --url http://localhost:8080/fhir"
    )


@clients_app.command("token")
def token(
    client_id: str = typer.Option(..., "--id"),
    key: Path = typer.Option(..., "--key", help="The client's private JWK (JSON)"),
    url: str = typer.Option(..., "--url", help="The gateway's FHIR base URL"),
    scope: str = typer.Option("system/*.rs", "--scope"),
) -> None:
    """Obtain an access token the SMART Backend Services way and print it."""
    import time
    import uuid

    import httpx
    from joserfc import jwt
    from joserfc.jwk import JWKRegistry

    private = JWKRegistry.import_key(json.loads(key.read_text(encoding="utf-8")))
    alg = "ES384" if private.key_type == "EC" else "RS384"
    token_url = f"{url.rstrip('/')}/auth/token"
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": alg, "kid": private.kid, "typ": "JWT"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        },
        private,
        algorithms=[alg],
    )
    answer = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=30,
    )
    if answer.status_code != 200:
        typer.echo(f"error: {answer.status_code} {answer.text}", err=True)
        raise typer.Exit(1)
    typer.echo(answer.json()["access_token"])
