"""Keeps freed memory from staying resident (bench/backlog_memory.py measures it): every second the C heap's free
pages are handed back, every 10 s a full garbage collection runs; large buffers get their own mappings. The C-heap
part is glibc only (a no-op elsewhere); GATEWAY_MALLOC_TUNING=0 switches all of it off."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os

PERIOD = 1.0
"""Seconds between two trims of the C heap (well under a millisecond each)."""

COLLECT_EVERY = 10
"""A full garbage collection every this many rounds (tens of ms). tune_garbage_collector (gateway/app.py) makes the
collector run rarely, for speed, and the hot path makes no reference cycles, but rarer paths do (a retried request's
exception and traceback, a client closed after a check): this frees them within 10 s. The rounds collected the young
generations every second too, until the cycles that needed it were found: aiokafka's record sets dropped when every
partition was paused, each holding its fetch buffer, which consumption no longer makes (gateway/load.py, HOLD).
Those collections walked every record in flight each second, 4-6% of a Unibo drain's CPU; without them and without
the drops, a 1M backlog with a brand parked peaked at 132 MiB, flat (bench/backlog_memory.py --halted-brand)."""

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
    """Every PERIOD trim the heap, after a full collection each COLLECT_EVERY rounds."""
    if not enabled():
        return
    libc = _glibc()
    rounds = 0
    while True:
        await asyncio.sleep(PERIOD)
        rounds += 1
        if rounds % COLLECT_EVERY == 0:
            gc.collect()
        if libc is not None:
            libc.malloc_trim(0)
