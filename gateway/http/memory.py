"""Memory back to the system after a large request. CPython frees a large bundle's objects
when the request ends, but glibc's allocator keeps the freed pages in its arenas: without a
trim, a worker that once parsed a 100 MB transaction stays 1 GB large. Trimming is cheap
(milliseconds) and runs after the response is sent, in a thread."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# Bodies from this size on are followed by a trim.
LARGE_BODY_BYTES = 4 * 1024 * 1024


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_trim = _malloc_trim()


def release_memory() -> None:
    if _trim is not None:
        _trim(0)
