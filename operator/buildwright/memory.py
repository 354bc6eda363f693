"""Give memory freed after a burst back to the system.

A burst of watch events (thousands of BuildRuns and Pods decoded at once) grows the C heap;
once handled, most of it is free again but stays mapped: glibc malloc keeps freed pages
unless asked, and `malloc_trim` returns free pages anywhere in its heap. Small objects live
in CPython's own arenas unless PYTHONMALLOC=malloc (as the image sets); those arenas are only
released when entirely empty, and after a burst a few surviving objects keep most of them
(bench/README.md: RSS after a 1,000-BuildRun burst 428 MB with CPython's arenas, 199 MB in
glibc's heap with this trimming).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging

logger = logging.getLogger("buildwright")

TRIM_INTERVAL_SECONDS = 10.0

_task: asyncio.Task[None] | None = None


def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    """glibc's malloc_trim, or None on a libc without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def start_trimming(interval: float = TRIM_INTERVAL_SECONDS) -> None:
    global _task
    trim = _malloc_trim()
    if trim is None:
        logger.debug("no malloc_trim in this C library; freed memory stays with the process")
        return
    _task = asyncio.create_task(_trim_forever(trim, interval), name="buildwright-malloc-trim")


async def _trim_forever(trim: ctypes._NamedFuncPointer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        trim(0)


async def stop_trimming() -> None:
    global _task
    if _task is not None:
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _task
        _task = None
