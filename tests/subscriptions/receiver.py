"""A real HTTP receiver of notifications on loopback (uvicorn, a raw ASGI app): it records
every request (method, path, headers, JSON body, arrival time) and answers with the status
the test sets, after the delay it sets (a receiver that is down, failing or slow)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Got:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() on arrival

    @property
    def event_number(self) -> int | None:
        v = self.headers.get("x-subscription-event-number")
        return int(v) if v else None

    def status(self) -> dict[str, Any]:
        """The SubscriptionStatus (Parameters) of a notification Bundle, by parameter name."""
        params = self.body["entry"][0]["resource"]["parameter"]
        out: dict[str, Any] = {}
        for p in params:
            if p["name"] == "notification-event":
                out.setdefault("notification-event", []).append(
                    {
                        q["name"]: next(v for k, v in q.items() if k.startswith("value"))
                        for q in p["part"]
                    }
                )
            else:
                out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
        return out

    def numbers(self) -> list[int]:
        """The event numbers a notification carries (Bundle), or its header's (R4)."""
        if isinstance(self.body, dict) and self.body.get("resourceType") == "Bundle":
            return [int(e["event-number"]) for e in self.status().get("notification-event", [])]
        return [self.event_number] if self.event_number is not None else []


@dataclass
class Receiver:
    status: int = 200
    delay: float = 0.0
    got: list[Got] = field(default_factory=list)
    refused: int = 0  # requests answered with a failure status

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.status
        if status < 300:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.got.append(
                Got(
                    scope["method"],
                    scope["path"],
                    headers,
                    orjson.loads(body) if body else None,
                    time.time(),
                )
            )
        else:
            self.refused += 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> Receiver:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        self._server = None
        self._task = None

    async def wait(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {len(self.got)}: {self.got[-3:]}")
            await asyncio.sleep(0.02)

    def numbers(self) -> list[int]:
        return [n for g in self.got for n in g.numbers()]
