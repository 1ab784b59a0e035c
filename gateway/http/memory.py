"""Memory back to the system after large requests. CPython frees a large bundle's objects
when its request ends, but glibc's allocator keeps freed pages in its arenas, and by default
raises its mmap threshold after each large free (so the next large buffers come from the
heap, where they fragment it): without help a worker that once parsed many large
transactions stays hundreds of MB larger. So: a fixed mmap threshold and few arenas
(configure_allocator, at start-up), and a trim once the last large body in flight is gone
(release_memory, called by Admission; milliseconds, in a thread)."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only (not musl, not macOS)
    except (OSError, AttributeError):
        return None
    return libc


_libc = _glibc()


def configure_allocator() -> None:
    if _libc is not None:
        _libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)  # fixed: no dynamic raise
        _libc.mallopt(_M_ARENA_MAX, 2)


def release_memory() -> None:
    if _libc is not None:
        _libc.malloc_trim(0)
