"""A real gateway on loopback: `create_app(Settings(...))` served by uvicorn as `gateway serve`
serves it (same server options), on a free 127.0.0.1 port, in a background thread with its
own event loop. Settings are the defaults `make run` uses, with only what a test names
changed: no Redis, no .env file, and no GATEWAY_* variable of the developer's shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.http.server import server_options
from gateway.settings import Settings
from tests.conftest import truncate_all

START_TIMEOUT = 60.0


@dataclass
class LiveGateway:
    """A running gateway: `base` is the FHIR base URL (http://127.0.0.1:PORT/fhir)."""

    base: str
    database_url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    port: int

    def run(self, coro, timeout: float = 60.0):
        """Run a coroutine on the server's event loop (where its engine lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def reset(self) -> None:
        """Empty every table, as the other suites' `client` fixture does."""
        self.run(truncate_all(self.app.state.core.store.engine))


def _serve(server: uvicorn.Server, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(server.serve(sockets=[sock]))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())


@contextlib.contextmanager
def live_server(database_url: str, **overrides: Any) -> Iterator[LiveGateway]:
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
            env.delenv(name)
        values = {"redis_url": None, **overrides}
        settings = Settings(database_url=database_url, _env_file=None, **values)
    app = create_app(settings)
    # Bind first and hand the socket to uvicorn: no window in which another process could take
    # the port between choosing it and listening on it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        **server_options(settings),  # as `gateway serve` runs it
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=_serve, args=(server, sock, loop), name=f"gateway-{port}", daemon=True
    )
    thread.start()
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the gateway stopped during start-up (see the captured log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        health = httpx.get(f"{root}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        yield LiveGateway(root + settings.base_path, database_url, app, loop, port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():  # a request that never ends: stop waiting for it
            server.force_exit = True
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        sock.close()
