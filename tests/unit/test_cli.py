"""The `gateway` console script: migrate, validate, profiles."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from gateway.cli import app
from gateway.settings import PROJECT_ROOT

runner = CliRunner()


def test_migrate_creates_the_schema(tmp_path):
    db = tmp_path / "g.db"
    result = runner.invoke(app, ["migrate", "--database-url", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}
    assert {"resources", "resource_history", "idx_token", "outbox", "alembic_version"} <= tables


def test_validate_examples_and_a_broken_file(tmp_path):
    ok = runner.invoke(app, ["validate", str(PROJECT_ROOT / "profiles" / "examples")])
    assert ok.exit_code == 0, ok.output
    patient = json.loads(
        (PROJECT_ROOT / "profiles" / "examples" / "Patient-cn-wang-xiuying.json").read_text()
    )
    patient["identifier"][0]["value"] = "410102195603120422"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(patient, ensure_ascii=False), "utf-8")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1


def test_profiles_pack(tmp_path):
    out = tmp_path / "package.tgz"
    result = runner.invoke(app, ["profiles", "pack", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
