"""`gateway clients demo` and `gateway clients token`: what docker compose runs at first start
and what a person types to get a token, against a live gateway with authentication on."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import uvicorn
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.auth.clients import ROLES
from gateway.cli import app as cli
from gateway.search.reindex import migrate
from gateway.settings import Settings


def _serve(app, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    return server, thread


def test_demo_clients_get_tokens_from_a_live_gateway(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    migrate(url)
    keys = tmp_path / "keys"
    runner = CliRunner()
    first = runner.invoke(cli, ["clients", "demo", "--keys", str(keys), "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "gateway clients token" in first.output
    assert sorted(p.name for p in keys.iterdir()) == sorted(f"demo-{r}.jwk.json" for r in ROLES)
    assert all(p.stat().st_mode & 0o077 == 0 for p in keys.iterdir())  # private keys: owner only
    again = runner.invoke(cli, ["clients", "demo", "--keys", str(keys), "--database-url", url])
    assert again.exit_code == 0 and "exist already" in again.output

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(database_url=url, redis_url=None, auth="on", _env_file=None)
    server, thread = _serve(create_app(settings), sock)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        got = runner.invoke(
            cli,
            [
                "clients",
                "token",
                "--id",
                "demo-admin",
                "--key",
                str(keys / "demo-admin.jwk.json"),
                "--url",
                base,
                "--scope",
                "system/*.cruds",
            ],
        )
        assert got.exit_code == 0, got.output
        token = got.output.strip()
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/Patient", headers=headers).status_code == 200
        assert httpx.get(f"{base}/Patient").status_code == 401
        wrong = runner.invoke(
            cli,
            [
                "clients",
                "token",
                "--id",
                "demo-hospital",
                "--key",
                str(keys / "demo-admin.jwk.json"),
                "--url",
                base,
            ],
        )
        assert wrong.exit_code == 1 and "invalid_client" in wrong.output
        key = json.loads((keys / "demo-hospital.jwk.json").read_text())
        assert key["kty"] == "EC" and "d" in key
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
