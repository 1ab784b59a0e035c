"""`gateway clients add | list | disable` through typer's CliRunner, on a throwaway SQLite
database migrated like `gateway migrate` does; a client registered there obtains tokens from a
gateway on the same database (both databases); and `gateway serve` refuses to listen beyond
loopback with authentication off.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from typer.testing import CliRunner

import gateway.auth.clients as clients_module
import gateway.search.reindex as reindex_module
from gateway.auth.clients import Client, ClientStore
from gateway.cli import app
from gateway.search.reindex import migrate
from gateway.store.engine import create_engine
from tests.auth.conftest import BASE, SmartClient, bearer
from tests.conftest import running_app, truncate_all

runner = CliRunner()


# --- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    migrate(url)
    return url


def clients(db: str, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["clients", *args, "--database-url", db], env=env)


def write_jwks(path: Path, *keys) -> Path:
    path.write_text(json.dumps({"keys": [k.as_dict(private=False) for k in keys]}), "utf-8")
    return path


def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, private=True, auto_kid=True)


def ec() -> ECKey:
    return ECKey.generate_key("P-384", private=True, auto_kid=True)


def stored(db: str, client_id: str) -> Client | None:
    async def look() -> Client | None:
        store = ClientStore(create_engine(db))
        try:
            return await store.get(client_id, fresh=True)
        finally:
            await store.engine.dispose()

    return asyncio.run(look())


def listed(db: str) -> list[list[str]]:
    result = clients(db, "list")
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.stdout.splitlines() if line.strip()]


# --- add -------------------------------------------------------------------------------------
def test_add_with_a_jwks_file(db, tmp_path):
    key = rsa()
    jwks = write_jwks(tmp_path / "hospital.jwks.json", key)
    result = clients(
        db,
        "add",
        "--id",
        "hosp-1",
        "--org",
        "Organization/org-a",
        "--role",
        "hospital",
        "--jwks",
        str(jwks),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "registered hosp-1: Organization/org-a, role hospital"
    assert listed(db) == [["hosp-1", "Organization/org-a", "hospital", "enabled", "1 key(s)"]]
    client = stored(db, "hosp-1")
    assert client is not None and client.enabled
    assert client.jwks == {"keys": [key.as_dict(private=False)]}
    assert client.jwks_uri is None and client.scopes is None  # the role's scopes


def test_add_with_a_jwks_uri(db):
    uri = "https://ehr.example.cn/.well-known/jwks.json"
    result = clients(
        db,
        "add",
        "--id",
        "ehr-7",
        "--org",
        "Organization/h-3",
        "--role",
        "primary-care",
        "--jwks-uri",
        uri,
    )
    assert result.exit_code == 0, result.output
    assert listed(db) == [["ehr-7", "Organization/h-3", "primary-care", "enabled", uri]]
    client = stored(db, "ehr-7")
    assert client is not None and client.jwks is None and client.jwks_uri == uri


def test_add_with_scopes_and_several_keys(db, tmp_path):
    jwks = write_jwks(tmp_path / "k.json", rsa(), ec())
    result = clients(
        db,
        "add",
        "--id",
        "feed",
        "--org",
        "Organization/org-a",
        "--role",
        "platform",
        "--jwks",
        str(jwks),
        "--scope",
        "system/Patient.rs system/Observation.rs",
    )
    assert result.exit_code == 0, result.output
    assert listed(db) == [["feed", "Organization/org-a", "platform", "enabled", "2 key(s)"]]
    client = stored(db, "feed")
    assert client is not None and client.scopes == "system/Patient.rs system/Observation.rs"


def test_add_reads_the_database_from_the_environment(db, tmp_path):
    jwks = write_jwks(tmp_path / "k.json", ec())
    args = ["clients", "add", "--id", "env-1", "--org", "Organization/o", "--role", "insurer"]
    result = runner.invoke(app, [*args, "--jwks", str(jwks)], env={"GATEWAY_DATABASE_URL": db})
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["clients", "list"], env={"GATEWAY_DATABASE_URL": db})
    assert result.exit_code == 0 and result.stdout.startswith("env-1\t"), result.output


def test_add_twice_is_refused(db, tmp_path):
    first = write_jwks(tmp_path / "a.json", rsa())
    second = write_jwks(tmp_path / "b.json", ec())
    base = ["add", "--id", "dup", "--org", "Organization/org-a", "--role", "hospital"]
    assert clients(db, *base, "--jwks", str(first)).exit_code == 0
    result = clients(db, *base[:-1], "admin", "--jwks", str(second))
    assert result.exit_code == 2, result.output
    assert "exists already" in result.stderr
    client = stored(db, "dup")
    assert client is not None and client.role == "hospital"  # the first registration stands
    assert client.jwks is not None and client.jwks["keys"][0]["kty"] == "RSA"


def _private_jwks(tmp_path: Path) -> Path:
    path = tmp_path / "private.json"
    path.write_text(json.dumps({"keys": [rsa().as_dict(private=True)]}), "utf-8")
    return path


def _no_kid_jwks(tmp_path: Path) -> Path:
    key = RSAKey.generate_key(2048, private=True)  # no kid
    path = tmp_path / "nokid.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}), "utf-8")
    return path


def _symmetric_jwks(tmp_path: Path) -> Path:
    path = tmp_path / "oct.json"
    key = OctKey.generate_key(256, parameters={"kid": "shared"}, private=True)
    path.write_text(json.dumps({"keys": [key.as_dict(private=True)]}), "utf-8")
    return path


def _empty_jwks(tmp_path: Path) -> Path:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"keys": []}), "utf-8")
    return path


def _not_json(tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text("{not json", "utf-8")
    return path


def _good_jwks(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "good.json", ec())


BAD_REGISTRATIONS = {
    "org-not-an-organization": lambda p: ["--org", "Patient/1", "--jwks", str(_good_jwks(p))],
    "org-bare-id": lambda p: ["--org", "org-a", "--jwks", str(_good_jwks(p))],
    "unknown-role": lambda p: ["--role", "doctor", "--jwks", str(_good_jwks(p))],
    "no-keys": lambda p: [],
    "both-keys-and-uri": lambda p: [
        "--jwks",
        str(_good_jwks(p)),
        "--jwks-uri",
        "https://x.example/jwks",
    ],
    "private-key": lambda p: ["--jwks", str(_private_jwks(p))],
    "key-without-kid": lambda p: ["--jwks", str(_no_kid_jwks(p))],
    "symmetric-key": lambda p: ["--jwks", str(_symmetric_jwks(p))],
    "empty-key-set": lambda p: ["--jwks", str(_empty_jwks(p))],
    "not-json": lambda p: ["--jwks", str(_not_json(p))],
    "missing-file": lambda p: ["--jwks", str(p / "nowhere.json")],
    "uri-not-http": lambda p: ["--jwks-uri", "ftp://example.org/jwks"],
    "client-id-with-space": lambda p: ["--id", "bad id", "--jwks", str(_good_jwks(p))],
    "client-id-too-long": lambda p: ["--id", "c" * 129, "--jwks", str(_good_jwks(p))],
}


@pytest.mark.parametrize("case", list(BAD_REGISTRATIONS))
def test_bad_registration_is_refused(db, tmp_path, case):
    given = BAD_REGISTRATIONS[case](tmp_path)
    defaults = {"--id": "c-1", "--org": "Organization/org-a", "--role": "hospital"}
    for flag in list(defaults):
        if flag in given:
            defaults.pop(flag)
    args = [x for pair in defaults.items() for x in pair] + given
    result = clients(db, "add", *args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.strip(), "the reason is printed on stderr"
    assert "registered" not in result.stdout
    assert listed(db) == []


@pytest.mark.parametrize("missing", ["--id", "--org", "--role"])
def test_add_needs_id_org_and_role(db, tmp_path, missing):
    jwks = str(_good_jwks(tmp_path))
    args = {"--id": "c-1", "--org": "Organization/org-a", "--role": "hospital"}
    del args[missing]
    result = clients(db, "add", *[x for pair in args.items() for x in pair], "--jwks", jwks)
    assert result.exit_code == 2, result.output
    assert missing in result.stderr
    assert listed(db) == []


# --- list and disable ------------------------------------------------------------------------
def test_list_empty(db):
    result = clients(db, "list")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_list_is_sorted_by_client_id(db, tmp_path):
    jwks = str(_good_jwks(tmp_path))
    for cid in ("zeta", "alpha", "mid"):
        result = clients(
            db,
            "add",
            "--id",
            cid,
            "--org",
            "Organization/org-a",
            "--role",
            "sandbox",
            "--jwks",
            jwks,
        )
        assert result.exit_code == 0, result.output
    assert [row[0] for row in listed(db)] == ["alpha", "mid", "zeta"]


def test_disable(db, tmp_path):
    jwks = str(_good_jwks(tmp_path))
    for cid in ("keep", "stop"):
        args = ["--id", cid, "--org", "Organization/org-a", "--role", "hospital"]
        assert clients(db, "add", *args, "--jwks", jwks).exit_code == 0
    result = clients(db, "disable", "--id", "stop")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "disabled stop"
    states = {row[0]: row[3] for row in listed(db)}
    assert states == {"keep": "enabled", "stop": "disabled"}
    client = stored(db, "stop")
    assert client is not None and client.enabled is False
    # Disabling again is harmless; the client stays disabled.
    assert clients(db, "disable", "--id", "stop").exit_code == 0
    assert {row[0]: row[3] for row in listed(db)}["stop"] == "disabled"


def test_disable_unknown_client(db):
    result = clients(db, "disable", "--id", "nobody")
    assert result.exit_code == 2, result.output
    assert "no client nobody" in result.stderr


# --- the CLI and a running gateway (both databases) ------------------------------------------
async def test_cli_registered_client_gets_tokens_until_disabled(
    database_url, tmp_path, monkeypatch
):
    key = ECKey.generate_key("P-384", private=True, auto_kid=True)
    jwks = write_jwks(tmp_path / "client.jwks.json", key)
    async with running_app(database_url, auth="on", validation_workers=0) as application:
        await truncate_all(application.state.core.store.engine)
        add = await asyncio.to_thread(
            clients,
            database_url,
            "add",
            "--id",
            "cli-client",
            "--org",
            "Organization/org-a",
            "--role",
            "admin",
            "--jwks",
            str(jwks),
            "--scope",
            "system/Patient.rs",
        )
        assert add.exit_code == 0, add.output
        client = SmartClient("cli-client", key, "ES384", "Organization/org-a", "admin")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            r = await http.post("/auth/token", data=client.form("system/Patient.rs"))
            assert r.status_code == 200, r.text
            assert r.json()["scope"] == "system/Patient.rs"
            token = r.json()["access_token"]
            assert (await http.get("/Patient", headers=bearer(token))).status_code == 200

            off = await asyncio.to_thread(clients, database_url, "disable", "--id", "cli-client")
            assert off.exit_code == 0, off.output
            # Another process disabled it: this gateway sees it once its short cache lapses.
            monkeypatch.setattr(clients_module, "CACHE_SECONDS", 0.0)
            r = await http.get("/Patient", headers=bearer(token))
            assert r.status_code == 401, r.text
            assert r.json()["resourceType"] == "OperationOutcome"
            r = await http.post("/auth/token", data=client.form("system/Patient.rs"))
            assert r.status_code == 401, r.text
            assert r.json()["error"] == "invalid_client"


# --- gateway serve ---------------------------------------------------------------------------
@pytest.fixture
def no_server(monkeypatch):
    """uvicorn.run and the migration, recorded instead of run."""
    import uvicorn

    calls: dict[str, list] = {"run": [], "migrate": []}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls["run"].append((a, kw)))
    monkeypatch.setattr(reindex_module, "migrate", lambda *a, **kw: calls["migrate"].append(a))
    return calls


def serve(db: str, *args: str, **env: str | None):
    return runner.invoke(
        app, ["serve", *args], env={"GATEWAY_DATABASE_URL": db, "GATEWAY_HOST": None, **env}
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.10.5", "gateway.example.cn"])
def test_serve_refuses_non_loopback_with_auth_off(db, no_server, host):
    result = serve(db, "--host", host, GATEWAY_AUTH="off")
    assert result.exit_code == 2, result.output
    assert "GATEWAY_AUTH=off" in result.stderr
    assert no_server == {"run": [], "migrate": []}  # no server, not even a migration


def test_serve_refuses_a_non_loopback_host_from_the_environment(db, no_server):
    result = serve(db, GATEWAY_AUTH="off", GATEWAY_HOST="0.0.0.0")
    assert result.exit_code == 2, result.output
    assert no_server["run"] == []


def test_serve_auth_off_is_the_default(db, no_server):
    result = runner.invoke(
        app,
        ["serve", "--host", "0.0.0.0"],
        env={"GATEWAY_DATABASE_URL": db, "GATEWAY_AUTH": None, "GATEWAY_HOST": None},
    )
    assert result.exit_code == 2, result.output
    assert no_server["run"] == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_on_loopback_with_auth_off(db, no_server, host):
    result = serve(db, "--host", host, "--port", "18080", GATEWAY_AUTH="off")
    assert result.exit_code == 0, result.output
    assert len(no_server["run"]) == 1
    _, kwargs = no_server["run"][0]
    assert kwargs["host"] == host and kwargs["port"] == 18080
    assert no_server["migrate"] == [(db,)]


@pytest.mark.parametrize(
    "where",
    [
        {"GATEWAY_PUBLIC_BASE_URL": "https://fhir.example.cn/fhir"},
        {"GATEWAY_ALLOWED_HOSTS": '["fhir.example.cn"]'},
    ],
)
def test_serve_beyond_loopback_with_auth_on(db, no_server, where):
    result = serve(db, "--host", "0.0.0.0", "--no-migrate", GATEWAY_AUTH="on", **where)
    assert result.exit_code == 0, result.output
    assert len(no_server["run"]) == 1
    assert no_server["run"][0][1]["host"] == "0.0.0.0"
    assert no_server["migrate"] == []


def test_serve_beyond_loopback_needs_a_known_host(db, no_server):
    """Links (Location, fullUrl, paging) are built from the base URL: beyond loopback it must
    not be whatever Host header a client sends."""
    result = serve(
        db,
        "--host",
        "0.0.0.0",
        GATEWAY_AUTH="on",
        GATEWAY_PUBLIC_BASE_URL=None,
        GATEWAY_ALLOWED_HOSTS=None,
    )
    assert result.exit_code == 2, result.output
    assert "GATEWAY_ALLOWED_HOSTS" in result.stderr
    assert no_server["run"] == []
