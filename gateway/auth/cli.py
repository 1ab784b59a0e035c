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
