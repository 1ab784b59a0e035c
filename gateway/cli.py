"""`gateway` command line: serve, migrate (more later: import, export, validate, reindex)."""

from __future__ import annotations

import typer

from gateway.auth.cli import clients_app
from gateway.settings import Settings
from gateway.validation.cli import register as register_validation

app = typer.Typer(help="FHIR family-doctor gateway", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command()
def migrate(
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """Create or upgrade the database schema to the latest version."""
    from gateway.search.reindex import migrate as migrate_database

    url = database_url or Settings().database_url
    reindexed = migrate_database(url)
    if reindexed is not None:
        typer.echo(f"reindexed {reindexed} resources for the new index rows")
    typer.echo(f"database is up to date: {url.split('@')[-1]}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Overrides GATEWAY_HOST"),
    port: int = typer.Option(None, help="Overrides GATEWAY_PORT"),
    workers: int = typer.Option(None, help="Overrides GATEWAY_WORKERS"),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Migrate first"),
) -> None:
    """Serve the FHIR API at http://HOST:PORT/fhir."""
    import uvicorn

    from gateway.http.server import server_options

    settings = Settings()
    bind = host or settings.host
    if settings.auth == "off" and bind not in LOOPBACK:
        typer.echo(
            f"error: authentication is off (GATEWAY_AUTH=off) and {bind} is not loopback: "
            "turn authentication on to serve beyond this machine",
            err=True,
        )
        raise typer.Exit(2)
    if bind not in LOOPBACK and not (settings.public_base_url or settings.allowed_hosts):
        typer.echo(
            f"error: serving on {bind} needs GATEWAY_PUBLIC_BASE_URL or GATEWAY_ALLOWED_HOSTS: "
            "links (Location, fullUrl, paging) must not take whatever Host a client sends",
            err=True,
        )
        raise typer.Exit(2)
    if migrate_first:
        from gateway.search.reindex import migrate as migrate_database

        migrate_database(settings.database_url)
    uvicorn.run(
        "gateway.asgi:app",
        host=bind,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level=settings.log_level,
        **server_options(settings),
    )


@app.command()
def reindex(
    database_url: str = typer.Option(None, help="Overrides GATEWAY_DATABASE_URL"),
) -> None:
    """Rebuild every search index (after adding a SearchParameter under profiles/)."""
    from rich.progress import Progress

    from gateway.search.reindex import reindex as run

    with Progress() as bar:
        task = bar.add_task("reindex", total=None)
        n = run(
            database_url or Settings().database_url,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(f"reindexed {n} resources")


# `gateway validate PATH…` and `gateway profiles pack|snapshot`.
register_validation(app)


if __name__ == "__main__":
    app()
