"""Batching: records accumulate per lane until count, bytes or linger says send, and lanes deliver in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.connector import VendorRecord
from gateway.destination import BatchLimits
from gateway.offsets import PartitionOffsets
from gateway.waits import wait_event


@dataclass(slots=True, eq=False)
class Item:
    """One vendor record on its way, with what is needed to settle its source message or dead-letter it."""

    record: VendorRecord
    offsets: PartitionOffsets
    offset: int
    event_type: str
    consumed_at: float
    occurred_at: float
    message: Any  # the aiokafka ConsumerRecord, kept for the dead-letter topic


class Batcher:
    """Accumulates one lane's items; a batch is due when it is full (count or bytes) or its oldest item lingered."""

    __slots__ = ("_first_at", "_items", "_size", "limits")

    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self._items: list[Item] = []
        self._size = 0
        self._first_at = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Item, now: float) -> bool:
        """Append an item; True when the batch is now full."""
        if not self._items:
            self._first_at = now
        self._items.append(item)
        self._size += len(item.record.body) + 1
        return self.full()

    def full(self) -> bool:
        """True when the next batch would be cut by count or bytes rather than by linger."""
        return len(self._items) >= self.limits.max_events or self._size >= self.limits.max_bytes

    def due_in(self, now: float) -> float:
        """Seconds until the oldest item has lingered long enough (<= 0: due now)."""
        return self._first_at + self.limits.linger - now

    def take(self, now: float) -> list[Item]:
        """Remove and return the next batch: at most max_events items and max_bytes bytes (always at least one)."""
        items = self._items
        count, size = 0, 0
        limit_events, limit_bytes = self.limits.max_events, self.limits.max_bytes
        for item in items:
            item_size = len(item.record.body) + 1
            if count and (count >= limit_events or size + item_size > limit_bytes):
                break
            count += 1
            size += item_size
        if count == len(items):
            self._items = []
            self._size = 0
            return items
        batch = items[:count]
        del items[:count]
        self._size -= size
        self._first_at = now  # the remainder is sent as soon as it is due again
        return batch

    def purge(self, keep: Callable[[Item], bool]) -> int:
        """Drop items `keep` rejects (e.g. of a revoked partition); returns how many were dropped."""
        kept = [item for item in self._items if keep(item)]
        dropped = len(self._items) - len(kept)
        if dropped:
            self._items = kept
            self._size = sum(len(item.record.body) + 1 for item in kept)
        return dropped


class Lane:
    """An ordered queue of one tenant's records with the same key hash; it delivers one batch at a time.

    Records with the same ordering key always land in the same lane, so per-player order holds while different
    lanes deliver in parallel. Batch N+1 of a lane is not sent until batch N is settled.
    """

    def __init__(self, batcher: Batcher, deliver: Callable[[list[Item]], Awaitable[None]]) -> None:
        self.batcher = batcher
        self._deliver = deliver
        self._wakeup = asyncio.Event()
        self.flushing = False
        self.hurried = False
        self.sending: Sequence[Item] = ()  # the batch being delivered (held until it settles)

    def held(self) -> list[Item]:
        """The items this lane holds: the batch being delivered, then those queued behind it."""
        return [*self.sending, *self.batcher._items]

    def add(self, item: Item, now: float) -> None:
        """Queue an item at monotonic time `now` (called on the consume path: cheap, no awaits)."""
        batcher = self.batcher
        if batcher.add(item, now) or len(batcher._items) == 1:  # not len(batcher): a Python __len__ per record
            self._wakeup.set()

    def flush(self) -> None:
        """Send what is queued without waiting for linger (drain and revocation)."""
        self.flushing = True
        self._wakeup.set()

    def hurry(self) -> None:
        """Send what is queued now, not at linger: the destination holds half its in-flight bound or more, so the
        bound, not max_events, caps the batch, and lingering would only let consumption run into the bound and wait
        there. Lasts until the lane is empty."""
        if not self.hurried and self.batcher:
            self.hurried = True
            self._wakeup.set()

    async def run(self) -> None:
        """Deliver batches until cancelled."""
        batcher = self.batcher
        while True:
            if not batcher:
                self.hurried = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            while not self.flushing and not self.hurried and not batcher.full():
                delay = batcher.due_in(time.monotonic())
                if delay <= 0:
                    break
                self._wakeup.clear()
                await wait_event(self._wakeup, delay)
            batch = self.sending = batcher.take(time.monotonic())
            try:
                await self._deliver(batch)
            finally:
                self.sending = ()
            del batch
