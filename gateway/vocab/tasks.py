"""Ending background tasks without leaking what they hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def finish_or_cancel(tasks: Iterable[asyncio.Task[Any]], grace: float) -> None:
    """Tasks already told to stop get `grace` seconds to end by themselves; the rest are
    cancelled. A task cancelled in the middle of a statement can leave its asyncio driver
    connection outside the pool (never rolled back, closed only by the garbage collector); one
    that ends by itself gives it back through its own `async with`."""
    every = list(tasks)
    running = [t for t in every if not t.done()]
    if running:
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
    for task in every:  # their ends awaited: an exception is never left unretrieved
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
