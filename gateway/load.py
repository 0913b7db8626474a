"""In-flight load: the events and bytes a pipeline holds, per tenant, and the bounds that pause consumption."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

HOLD = 5.0
"""At the in-flight bound, consumption (a pipeline's, or a parking reader's) first holds for up to this many seconds:
no poll, and the partitions stay unpaused. A poll with every partition paused makes aiokafka drop the records it
prefetched for them (to fetch them again on resume), and each dropped record set keeps its fetch buffer in a
reference cycle with its generator until the garbage collector runs: a 1M backlog with a halted brand sawed between
120 and 200 MiB of RSS unless the young generations were collected every second, which cost 4-6% of a drain's CPU.
An unpaused partition keeps one fetch waiting and fetches no more. A bound held longer than this is an outage or a
halt: the partitions are paused then, and polls (which keep the group membership: max_poll_interval_ms is at least
10 s) find nothing."""
HOLD_CHECK_MS = 10
"""How often the bound is looked at while holding: how soon a drop to half is noticed (a send takes tens of
milliseconds; 100 ms each time cost a quarter of a backlog's drain)."""
MESSAGE_OVERHEAD = 800
"""Bytes held per in-flight message beyond its value, key and headers: the ConsumerRecord (about 170 with its
attribute dict, and 70 for its offset and timestamp), the tracker entries (about 400: two dict slots, at up to three
times the live entries, and a tuple), the strings the decoded event leaves in the vendor records (about 100) and the
free space pymalloc cannot hand back between them. Measured with tracemalloc on bench/backlog_memory.py's Unibo
backlog: 1,470 bytes held per message of 240 value bytes and a 250-byte record, against 1,040 counted with the
earlier estimate of 400 (and 150 per record)."""

RECORD_OVERHEAD = 200
"""Bytes held per vendor record beyond its body: the VendorRecord (64), the Item that carries it (90), and its
timestamps."""


class Hold:
    """A consumer at its bound: held (no poll) for up to HOLD, then its partitions paused; resumed once below it.
    Written once for a pipeline and a parking reader."""

    def __init__(self) -> None:
        self.paused = False  # this consumer's partitions are paused by the bound (or left paused for it to resume)
        self._full_since: float | None = None  # when the bound was reached, while it is there

    def holds(self, consumer: Any, full: bool, now: float, keep_paused: Container[Any] = ()) -> bool:
        """True while consumption holds: skip the next poll. At the bound past HOLD, every assigned partition is
        paused (polls go on, finding nothing, and keep the group membership). Below it, the partitions are resumed,
        but for those in `keep_paused`."""
        if full:
            if self._full_since is None:
                self._full_since = now
            if now - self._full_since < HOLD:
                return True
            consumer.pause(*consumer.assignment())  # every time: a rebalance may have added partitions
            self.paused = True
            return False
        self._full_since = None
        if self.paused:
            consumer.resume(*(tp for tp in consumer.assignment() if tp not in keep_paused))
            self.paused = False
        return False


def message_bytes(message: Any) -> int:
    """What one consumed message costs to hold: value, key, headers and the fixed overhead."""
    size = MESSAGE_OVERHEAD + len(message.value or b"") + len(message.key or b"")
    headers = message.headers
    if headers:
        for key, value in headers:
            size += len(key) + len(value or b"")
    return size


def records_bytes(records: Sequence[Any]) -> int:
    """What a message's vendor records cost to hold: their bodies and the fixed overhead per record."""
    if len(records) == 1:  # the usual case, without a generator
        return len(records[0].body) + RECORD_OVERHEAD
    return sum(len(record.body) for record in records) + RECORD_OVERHEAD * len(records)


class Load:
    """Messages held and their bytes; trackers release a message's share when it settles (or is abandoned)."""

    __slots__ = ("bytes", "events")

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        """One more message of `size` bytes held."""
        self.events += 1
        self.bytes += size

    def release(self, size: int) -> None:
        """A message of `size` bytes no longer held."""
        self.events -= 1
        self.bytes -= size

    def __repr__(self) -> str:
        return f"Load(events={self.events}, bytes={self.bytes})"


class Bound:
    """A bound on a load with hysteresis: full once either count or bytes reach it, not full again until both fall
    to half, so consumption does not flap around the bound. `full_since` is when it last became full."""

    __slots__ = ("bytes", "events", "full", "full_since")

    def __init__(self, events: int, size: int) -> None:
        self.events = max(1, events)
        self.bytes = max(1, size)
        self.full = False
        self.full_since = 0.0

    def check(self, load: Load, now: float, aside: Load | None = None) -> bool:
        """Whether `load` is at the bound now (updating the hysteresis state). Part of it may be held `aside`: load
        that cannot drain for now (a halted brand's share, parked): it counts against the bound, and the rest is back
        at half once it is at half of what `aside` leaves (else a share held aside above half would keep the bound
        full for as long as it is held)."""
        if load.events >= self.events or load.bytes >= self.bytes:
            if not self.full:
                self.full = True
                self.full_since = now
        elif self.full and self._at_half(load, aside):
            self.full = False
        return self.full

    def _at_half(self, load: Load, aside: Load | None) -> bool:
        events, size, limit_events, limit_bytes = load.events, load.bytes, self.events, self.bytes
        if aside is not None:
            events, size = events - aside.events, size - aside.bytes
            limit_events, limit_bytes = limit_events - aside.events, limit_bytes - aside.bytes
        return events <= max(0, limit_events) // 2 and size <= max(0, limit_bytes) // 2

    def half_full(self, load: Load, aside: Load | None = None) -> bool:
        """Whether `load` is at half the bound or more, in count or bytes; the part held `aside` (as in `check`) counts
        neither in the load nor in the bound."""
        events, size, limit_events, limit_bytes = load.events, load.bytes, self.events, self.bytes
        if aside is not None:
            events, size = events - aside.events, size - aside.bytes
            limit_events, limit_bytes = limit_events - aside.events, limit_bytes - aside.bytes
        return events >= max(0, limit_events) // 2 or size >= max(0, limit_bytes) // 2

    def room(self, load: Load, average_bytes: int) -> int:
        """How many more messages of about `average_bytes` fit under the bound (at least 0)."""
        by_count = self.events - load.events
        by_bytes = (self.bytes - load.bytes) // max(1, average_bytes)
        return max(0, min(by_count, by_bytes))
