"""Processes that end with the process that started them. A validation worker belongs to one
gateway process, and a uvicorn worker to its supervisor: killed with SIGKILL (the OOM killer,
a container runtime), the starter cannot tell them to stop, and neither the kernel nor
multiprocessing ends them, so they would live on: holding memory, and a uvicorn worker even
serving requests. multiprocessing gives every process it starts a sentinel that becomes
ready when its parent ends; a daemon thread waits on it."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait


def on_parent_exit(action: Callable[[], None]) -> bool:
    """Run `action` (in a daemon thread) once the multiprocessing parent of this process has
    ended; False when this process was not started by multiprocessing (nothing to watch)."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if parent is None or sentinel is None:
        return False

    def watch() -> None:
        wait([sentinel])
        action()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return True
