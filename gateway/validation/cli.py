"""CLI pieces the main `gateway` command mounts:

    from gateway.validation.cli import register
    register(app)          # adds `gateway validate PATH…` and `gateway profiles pack|snapshot`

or, piecewise: `app.command("validate")(validate_command)` and
`app.add_typer(profiles_app, name="profiles")` (`validate_app` is the same command as a
sub-app for `add_typer(validate_app, name="validate")`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from gateway.validation.issues import Issue

profiles_app = typer.Typer(
    help="Our profiles: snapshots and the FHIR package", no_args_is_help=True
)
validate_app = typer.Typer(help="Validate FHIR JSON files or folders")


def _resources(path: Path) -> Iterator[tuple[str, Any]]:
    files = (
        sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
        if path.is_dir()
        else [path]
    )
    for file in files:
        try:
            if file.suffix == ".ndjson":
                for n, line in enumerate(file.read_bytes().splitlines(), 1):
                    if line.strip():
                        yield f"{file}:{n}", orjson.loads(line)
            else:
                yield str(file), orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            yield str(file), exc


def _validator(strict: bool, core_only: bool, profiles_dir: Path | None, core_dir: Path | None):
    from gateway.validation.registry import ProfileRegistry
    from gateway.validation.validator import DEFAULT_PROFILES, Validator

    registry = ProfileRegistry.load(profiles_dir, core_dir)
    return Validator(registry, () if core_only else DEFAULT_PROFILES, strict=strict)


def validate_command(
    paths: list[Path] = typer.Argument(..., help="Files (.json, .ndjson) or folders"),
    profile: list[str] = typer.Option([], "--profile", "-p", help="Also validate against this"),
    strict: bool = typer.Option(False, help="Unknown profiles are errors"),
    core_only: bool = typer.Option(False, help="No default CN profiles by resource type"),
    warnings: bool = typer.Option(False, "--warnings", "-w", help="List warnings too"),
    profiles_dir: Path = typer.Option(None, help="Default: the repository's profiles/"),
    core_dir: Path = typer.Option(None, help="FHIR R4 core definitions folder"),
) -> None:
    """Validate resources; print a summary table; exit 1 when any has an error."""
    console = Console()
    validator = _validator(strict, core_only, profiles_dir, core_dir)
    table = Table("file", "resource", "errors", "warnings", "result")
    details: list[tuple[str, Issue]] = []
    failed = total = 0
    for path in paths:
        for name, resource in _resources(path):
            total += 1
            if isinstance(resource, Exception):
                issues = [Issue.make("VAL-1000", "", detail=str(resource)[:200])]
            else:
                issues = validator.validate(resource, profile or None)
            errors = [i for i in issues if i.is_error]
            shown = [i for i in issues if i.is_error or (warnings and i.severity == "warning")]
            details += [(name, i) for i in shown]
            failed += bool(errors)
            label = _label(resource)
            result = "[red]FAIL[/red]" if errors else "[green]ok[/green]"
            table.add_row(name, label, str(len(errors)), str(len(issues) - len(errors)), result)
    console.print(table)
    for name, i in details:
        colour = "red" if i.is_error else "yellow"
        console.print(
            f"[{colour}]{i.severity}[/{colour}] {i.message_id} {name} {i.expression}: "
            f"{i.text_en} / {i.text_zh}",
            highlight=False,
        )
    console.print(f"{total} resource(s), {failed} with errors")
    raise typer.Exit(1 if failed else 0)


def _label(resource: Any) -> str:
    if not isinstance(resource, dict):
        return "-"
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '')}"


validate_app.callback(invoke_without_command=True)(validate_command)


@profiles_app.command("pack")
def pack_command(
    out: Path = typer.Option(Path("package.tgz"), "--out", "-o", help="Where to write"),
    profiles_dir: Path = typer.Option(None, help="Default: the repository's profiles/"),
    core_dir: Path = typer.Option(None, help="FHIR R4 core definitions folder"),
) -> None:
    """Build the installable FHIR package (package.tgz with package/package.json)."""
    from gateway.validation.package import pack_profiles
    from gateway.validation.registry import ProfileRegistry

    written = pack_profiles(out, ProfileRegistry.load(profiles_dir, core_dir))
    typer.echo(f"wrote {written}")


@profiles_app.command("snapshot")
def snapshot_command(
    check: bool = typer.Option(False, help="Only report stale snapshots (exit 1 if any)"),
) -> None:
    """Regenerate profiles/generated/ from the differentials."""
    from gateway.validation.generate import main

    raise typer.Exit(main(["--check"] if check else []))


def register(app: typer.Typer) -> None:
    """Mount `validate` and `profiles` on the main CLI."""
    app.command("validate")(validate_command)
    app.add_typer(profiles_app, name="profiles")
