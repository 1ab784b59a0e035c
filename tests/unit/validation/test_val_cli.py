from __future__ import annotations

import json
import tarfile

import typer
from typer.testing import CliRunner

from gateway.validation.cli import profiles_app, register, validate_app
from gateway.validation.locations import default_profiles_dir


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def version() -> None:  # a second command, as in the real CLI
        typer.echo("0")

    register(app)
    return app


def test_validate_folder_passes(core_dir):
    result = CliRunner().invoke(_app(), ["validate", str(default_profiles_dir() / "examples")])
    assert result.exit_code == 0, result.output
    assert "0 with errors" in result.output


def test_validate_reports_errors_and_exits_1(core_dir, tmp_path):
    bad = json.loads((default_profiles_dir() / "examples/Patient-cn-wang-xiuying.json").read_text())
    bad["identifier"][0]["value"] = "410102195603120422"
    (tmp_path / "bad.json").write_text(json.dumps(bad, ensure_ascii=False), "utf-8")
    (tmp_path / "broken.json").write_text("{", "utf-8")
    result = CliRunner().invoke(_app(), ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "VAL-1050" in result.output and "VAL-1000" in result.output
    assert "2 resource(s), 2 with errors" in result.output


def test_validate_app_as_sub_app(core_dir):
    app = typer.Typer()
    app.add_typer(validate_app, name="validate")
    app.command("noop")(lambda: None)
    path = default_profiles_dir() / "examples/Patient-cn-li-jianguo.json"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_profiles_pack(core_dir, tmp_path):
    out = tmp_path / "package.tgz"
    result = CliRunner().invoke(profiles_app, ["pack", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("package/package.json"))
        index = json.load(tar.extractfile("package/.index.json"))
    assert manifest["name"] == "cn.jtys.fhir.r4" and manifest["fhirVersions"] == ["4.0.1"]
    assert "package/StructureDefinition-cn-patient.json" in names
    assert "package/example/Patient-cn-wang-xiuying.json" in names
    assert {f["filename"] for f in index["files"]} == {
        n.split("/", 1)[1] for n in names if n.count("/") == 1 and not n.endswith("json.json")
    } - {"package.json", ".index.json"}


def test_pack_is_reproducible(registry, tmp_path):
    from gateway.validation.package import pack_profiles

    a = pack_profiles(tmp_path / "a.tgz", registry).read_bytes()
    b = pack_profiles(tmp_path / "b.tgz", registry).read_bytes()
    assert a == b


def test_profiles_snapshot_check(core_dir):
    result = CliRunner().invoke(profiles_app, ["snapshot", "--check"])
    assert result.exit_code == 0, result.output
