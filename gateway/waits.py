"""Bounded waits that never lose a cancellation, which `asyncio.wait_for` on Python 3.11 can (CPython gh-86296)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

# Why not asyncio.wait_for: on 3.11 it runs the awaited call as a separate task and, when the caller is cancelled in
# the same loop turn as that task finishes, returns the result and drops the cancellation. A task cancelled at
# shutdown then runs on (a side task back in its loop, a lane waiting again) and the drain waits for it forever.
# asyncio.timeout runs the call in the caller's own task, so a cancellation always reaches it.


async def bounded(seconds: float, call: Awaitable[T]) -> T:
    """Await `call` for at most `seconds`; past that it is cancelled and TimeoutError raised."""
    async with asyncio.timeout(seconds):
        return await call


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait up to `seconds` (None: without a bound) for `event`; whether it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
