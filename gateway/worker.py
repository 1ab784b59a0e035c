"""`gateway worker`: the outbox relay and the background parts (gateway.background) in a
process of their own; several may run on one database and one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from gateway.app import build_core, redis_client
from gateway.background import WorkerContext, start_parts, stop_parts
from gateway.settings import Settings

log = logging.getLogger("gateway.worker")


async def run(settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Run every part until SIGTERM or SIGINT."""
    core, relay = await build_core(settings)
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    ctx = WorkerContext(settings, core, relay, redis)
    relay.start()  # rows left by gateways that died before relaying them
    parts = await start_parts(ctx)
    log.info("worker running: %s", ", ".join(p.name for p in parts) or "relay only")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready:
        ready()
    try:
        await stop.wait()
    finally:
        await stop_parts(parts)
        await relay.stop()
        await relay.bus.close()
        if redis is not None:
            await redis.aclose()
        core.validation.close()
        await core.store.dispose()
