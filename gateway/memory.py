"""Keeps freed memory from staying resident (bench/backlog_memory.py measures it): large buffers get their own
mappings, the C heap's free pages are handed back every second, and the oldest generation is collected every 10 s.
The C-heap part is glibc only (a no-op elsewhere); GATEWAY_MALLOC_TUNING=0 switches all of it off."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os

TRIM_PERIOD = 1.0
"""Seconds between two trims of the C heap: each costs about a millisecond for a heap of a hundred MB."""

COLLECT_EVERY = 10
"""A full garbage collection every this many trims. tune_garbage_collector (gateway/app.py) makes the collector run
rarely, for speed; left alone, what the oldest generation and the free lists hold stays resident between its rare
runs: RSS then saws between the in-flight load and 20-40 MB above it. A full collection costs tens of ms."""

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024
"""Allocations from this size on (fetched record sets, request bodies, batch lists) are mapped on their own. glibc
raises this threshold to the largest block freed so far (up to 32 MiB), after which multi-MB buffers come from the
heap and fragment it: RSS then ratchets up to the largest heap ever held. Fixing it stops that."""


def enabled() -> bool:
    """False when GATEWAY_MALLOC_TUNING=0 (to compare, or should it ever get in the way)."""
    return os.environ.get("GATEWAY_MALLOC_TUNING", "1") != "0"


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has malloc_trim and mallopt), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def tune_malloc() -> None:
    """Fix the mmap threshold (see MMAP_THRESHOLD); call once at start."""
    libc = _glibc() if enabled() else None
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


async def release_forever() -> None:
    """Trim the C heap every TRIM_PERIOD and collect every generation every COLLECT_EVERY trims."""
    if not enabled():
        return
    libc = _glibc()
    rounds = 0
    while True:
        await asyncio.sleep(TRIM_PERIOD)
        rounds += 1
        if rounds % COLLECT_EVERY == 0:
            gc.collect()
        if libc is not None:
            libc.malloc_trim(0)
