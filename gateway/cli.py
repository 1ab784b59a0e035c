"""`gateway` command line: serve, migrate, import, export-native, validate, reindex, …"""

from __future__ import annotations

from pathlib import Path

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
    from gateway.http import metrics_dir

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
    # Before anything imports prometheus-client: every process counts into shared files.
    metrics = metrics_dir.prepare()
    import uvicorn

    from gateway.http.server import server_options
    from gateway.vocab.logs import logging_config

    if migrate_first:
        from gateway.search.reindex import migrate as migrate_database

        migrate_database(settings.database_url)
    try:
        uvicorn.run(
            "gateway.asgi:app",
            host=bind,
            port=port or settings.port,
            workers=workers or settings.workers,
            log_level=settings.log_level,
            # One format for every line (GATEWAY_LOG_FORMAT); the gateway writes the access
            # lines itself, with the request id.
            log_config=logging_config(settings.log_format, settings.log_level),
            access_log=False,
            **server_options(settings),
        )
    finally:
        metrics_dir.remove(metrics)


@app.command()
def worker() -> None:
    """Run background work: the outbox relay, subscription delivery, bulk jobs (several
    workers may run on one database and one Redis)."""
    import asyncio

    from gateway.vocab.logs import configure
    from gateway.worker import run

    settings = Settings()
    configure(settings.log_format, settings.log_level)
    if settings.worker_metrics_port:  # subscription deliveries, export jobs: counted here
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
    asyncio.run(run(settings))


@app.command()
def mllp(
    host: str = typer.Option(None, help="Overrides GATEWAY_MLLP_HOST (default 127.0.0.1)"),
    port: int = typer.Option(None, help="Overrides GATEWAY_MLLP_PORT (default 2575)"),
    workers: int = typer.Option(None, help="Overrides GATEWAY_MLLP_WORKERS (default 1)"),
) -> None:
    """Receive HL7 v2 messages (ADT^A01/A04/A08, ORU^R01) over MLLP: each stored as one
    transaction on the configured database and answered with its ACK or NAK."""
    from gateway.mllp import serve as serve_mllp
    from gateway.vocab.logs import configure

    settings = Settings()
    configure(settings.log_format, settings.log_level)
    bind = host or settings.mllp_host

    def ready(bound: int) -> None:
        typer.echo(f"MLLP listening on {bind}:{bound}")

    port = settings.mllp_port if port is None else port
    serve_mllp(settings, bind, port, settings.mllp_workers if workers is None else workers, ready)


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


@app.command("import")
def import_records(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON or CSV records"),
    more: list[Path] = typer.Argument(  # noqa: B008 - typer's way
        None, exists=True, dir_okay=False, help="More FHIR files (without --source)"
    ),
    source: str = typer.Option(
        None,
        "--source",
        help="The mapping: resident, contract, … (none: FHIR NDJSON or transaction Bundles)",
    ),
    base_url: str = typer.Option(
        None, "--base-url", help="A running gateway's FHIR base (default: in process)"
    ),
    token: str = typer.Option(None, "--token", help="Bearer token for --base-url"),
    chunk: int = typer.Option(100, "--chunk", min=1, help="Records per $ingest request"),
    charset: str = typer.Option(None, "--charset", help="CSV charset (default: detected)"),
    restart: bool = typer.Option(False, "--restart", help="Ignore a checkpoint of this file"),
) -> None:
    """Import a regional system's export through $ingest: progress, summary, resumable."""
    import asyncio

    from rich.console import Console

    from gateway import cli_records

    console = Console()
    if base_url is None:  # in process, on GATEWAY_DATABASE_URL: migrated first, like serve
        from gateway.search.reindex import migrate as migrate_database

        migrate_database(Settings().database_url)
    if source is None:  # FHIR files: NDJSON, transaction and batch Bundles (gateway.bulk)
        from gateway.bulk.files_import import (
            ImportStopped,
            Tally,
            files_summary,
            run_files_import,
        )

        async def run_files() -> Tally:
            async with cli_records.gateway_client(base_url, token) as client:
                return await run_files_import([file, *(more or [])], client, chunk, console)

        try:
            tally = asyncio.run(run_files())
        except ImportStopped as exc:
            console.print(f"[red]import stopped:[/red] {exc}")
            raise typer.Exit(1) from None
        console.print(*files_summary(tally))
        return
    if more:
        console.print("[red]--source imports one file at a time[/red]")
        raise typer.Exit(2)

    async def run() -> cli_records.Checkpoint:
        async with cli_records.gateway_client(base_url, token) as client:
            return await cli_records.run_import(
                file, source, client, chunk, restart, charset, console
            )

    try:
        state = asyncio.run(run())
    except cli_records.Stopped as exc:
        console.print(f"[red]import stopped:[/red] {exc} (run again to resume)")
        raise typer.Exit(1) from None
    report = cli_records.finish(file, state)
    console.print(*cli_records.summary(state))
    console.print(f"report: {report}")


@app.command("export-native")
def export_native(
    out: Path = typer.Argument(..., dir_okay=False, help="The JSON file to write"),
    source: str = typer.Option("contract", "--source", help="The mapping to read back with"),
    query: str = typer.Option(None, "--query", help="Which resources (Type?search)"),
    base_url: str = typer.Option(
        None, "--base-url", help="A running gateway's FHIR base (default: in process)"
    ),
    token: str = typer.Option(None, "--token", help="Bearer token for --base-url"),
) -> None:
    """Write stored resources as a regional system's native records (the reverse mapping)."""
    import asyncio
    import json

    from rich.console import Console

    from gateway import cli_records

    console = Console()

    async def run() -> list[dict]:
        async with cli_records.gateway_client(base_url, token) as client:
            return await cli_records.export_native(client, source, query, console)

    try:
        records = asyncio.run(run())
    except cli_records.Stopped as exc:
        console.print(f"[red]export stopped:[/red] {exc}")
        raise typer.Exit(1) from None
    out.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    console.print(f"{len(records)} {source} records: {out}")


# `gateway validate PATH…` and `gateway profiles pack|snapshot`.
register_validation(app)


if __name__ == "__main__":
    app()
