"""The order gate of parking readers: a parked record that another process parked behind records it still held waits
until those are settled, so a player's older events are not overtaken when the processes come back at different
times (docs/parking.md, "Several processes")."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.offsets import PartitionOffsets
from gateway.parked_records import OrderAfter

CHECK_PERIOD: Final = 0.2
"""Seconds between two looks at one source partition's committed offset while a record waits on it."""


class SourcePositions(Protocol):
    """What a reader needs to know of the source: this process's tracking of a partition, and the group's commits."""

    def tracking(self, topic: str, partition: int) -> PartitionOffsets | None:
        """This process's live tracker of `topic`/`partition`, if it consumes it and read from it."""

    async def committed(self, topic: str, partition: int) -> int | None:
        """The destination group's committed offset of `topic`/`partition` (None: none yet, or no answer)."""


@dataclass(slots=True)
class _Watch:
    committed: int | None
    changed_at: float
    checked_at: float


class OrderGate:
    """Lets a parked record through once the source records it was parked behind are settled.

    The record names the highest source offset its parking process still held for its brand, and that process's
    tracking of the partition (AFTER_HEADER). Read by that same tracking, the record goes at once: its lanes hold
    the older records and keep the order. Anywhere else (another process, or this one after a restart or
    rebalance), it waits until the partition's commit position passes that offset: this process's own tracker's
    when it consumes the partition (the older records, read again, are in its lanes), the group's otherwise. The
    holder delivers within a probe interval of its brand coming back; a commit position that makes no progress for
    `patience` seconds (the holder gone, or the commit held by another brand's stuck record) no longer holds the
    record back: it goes, with a warning.
    """

    def __init__(
        self,
        source: SourcePositions,
        patience: float,
        timed_out: Callable[[], None],
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timed_out` hears of each wait given up because it made no progress for `patience` seconds."""
        self._source = source
        self._patience = patience
        self._timed_out = timed_out
        self._log = log
        self._clock = clock
        self._watches: dict[tuple[str, int], _Watch] = {}
        self._given_up: dict[tuple[str, int], int] = {}

    def open(self, wait: OrderAfter) -> bool:
        """True when the record may go now, from what is already known (no call to the broker)."""
        tracker = self._source.tracking(wait.topic, wait.partition)
        if tracker is not None:
            if tracker.token == wait.token:
                return True
            position = tracker.committable()
            if position is not None and position > wait.offset:
                return True
        key = (wait.topic, wait.partition)
        if self._given_up.get(key, -1) >= wait.offset:
            return True
        watch = self._watches.get(key)
        return watch is not None and watch.committed is not None and watch.committed > wait.offset

    async def refresh(self, wait: OrderAfter) -> bool:
        """Look at the group's commit again (at most every CHECK_PERIOD per partition); True when the record may go."""
        if self.open(wait):
            return True
        key = (wait.topic, wait.partition)
        now = self._clock()
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(None, now, 0.0)
        tracker = self._source.tracking(wait.topic, wait.partition)
        position = watch.committed
        if tracker is not None:
            position = tracker.committable()
        elif now - watch.checked_at >= CHECK_PERIOD:
            watch.checked_at = now
            position = await self._source.committed(wait.topic, wait.partition)
        if position is not None and position != watch.committed:
            watch.committed = position
            watch.changed_at = self._clock()
            if self.open(wait):
                return True
        if self._clock() - watch.changed_at < self._patience:
            return False
        self._given_up[key] = max(self._given_up.get(key, -1), wait.offset)
        self._timed_out()
        self._log.warning(
            "parked events go before older ones of their partition still unsettled elsewhere: no progress there",
            source_topic=wait.topic,
            source_partition=wait.partition,
            waited_for_offset=wait.offset,
            committed=watch.committed,
            patience_s=self._patience,
        )
        return True


__all__ = ["CHECK_PERIOD", "OrderGate", "SourcePositions"]
