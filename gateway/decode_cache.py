"""Events decoded by one destination's pipeline, reused by the others of the gateway that read the same record.

Each destination is its own consumer group, so each fetches and decodes every record. When they read in step (live
traffic, the usual case), the second and third decode of a record are the same work again. This cache keeps the
last `capacity` decoded records, keyed by their coordinates, and a destination that reads one of them takes the
event instead of decoding it. It never waits and never couples: a destination behind the others simply misses and
decodes for itself, as it would without the cache.

A hit needs equal value bytes too, so a record is never taken for another (a topic deleted and created again).
Records that fail to decode are not kept: each destination dead-letters them itself, as before. Events are frozen
models, so one destination's connector cannot change what another sees.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gateway.events import Event, decode

DEFAULT_CAPACITY = 4096
"""Records kept. In step, destinations are a poll or two apart: at 2,000 and 6,000 events/s, 1,024 entries already
shared 62-67% of the decodes of three destinations (two of every three, the most there is). An entry holds about
1.7 KiB (the event and the entry) besides the value bytes, so the cache holds at most about 7 MiB."""


class DecodeCache:
    """The last `capacity` records decoded by a gateway's pipelines, for the others to take (see the module doc)."""

    __slots__ = ("_capacity", "_entries", "_order", "hits", "misses")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a decode cache holds at least one record")
        self._capacity = capacity
        self._entries: dict[tuple[str, int, int], tuple[bytes, Event]] = {}
        self._order: deque[tuple[str, int, int]] = deque()  # keys, oldest first (a dict's first key is slow to drop)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def decode(self, message: Any) -> Event:
        """The event of a Kafka record: the one another destination decoded, else decoded here (and kept).

        Raises what `events.decode` raises for a record that cannot be decoded."""
        key = (message.topic, message.partition, message.offset)
        value = message.value
        entry = self._entries.get(key)
        if entry is not None and entry[0] == value:
            self.hits += 1
            return entry[1]
        self.misses += 1
        event = decode(value)
        if entry is None:
            self._order.append(key)
            if len(self._order) > self._capacity:
                del self._entries[self._order.popleft()]
        self._entries[key] = (value, event)
        return event
