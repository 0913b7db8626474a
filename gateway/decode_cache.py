"""Events decoded by one destination's pipeline, reused by the others of the gateway that read the same record.

Each destination is its own consumer group, so each fetches and decodes every record. When they read in step (live
traffic, the usual case), the second and third decode of a record are the same work again. This cache keeps the
last `capacity` decoded records, keyed by their coordinates, and a destination that reads one of them takes the
event instead of decoding it. It never waits and never couples: a destination behind the others simply misses and
decodes for itself, as it would without the cache.

A hit needs equal value bytes too, so a record is never taken for another (a topic deleted and created again).
Records that fail to decode are not kept: each destination dead-letters them itself, as before. Events are frozen
models, so one destination's connector cannot change what another sees. It holds at most DEFAULT_CAPACITY records
and DEFAULT_MAX_BYTES of their values, whichever comes first.

Kept records no other destination takes are pure cost: on a backlog the destinations drain at their own pace, far
apart, and 0-1% of the lookups hit, while every kept event stays alive for the garbage collector to walk (three
vendors draining 30,000 events spent 10% more CPU with the cache than without it). So the cache judges itself
every WINDOW misses: if fewer than MIN_USE hits came per record kept, it keeps only one miss in SAMPLE (and at most
capacity / SAMPLE records) until the sampled records are taken again, as they are as soon as the destinations read
in step (each kept record then gets a hit per other destination in step, 1 or 2, against MIN_USE).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gateway.events import Event, decode

DEFAULT_CAPACITY = 4096
"""Records kept. In step, destinations are a poll or two apart: at 2,000 and 6,000 events/s, 1,024 entries already
shared 62-67% of the decodes of three destinations (two of every three, the most there is). An entry of the standard
mix holds about 1.7 KiB (the event and the entry) besides its value bytes."""

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""Value bytes kept at most. The count alone would let large records (a producer's 1 MiB events) hold gigabytes after
they settled; an event takes a few times its value's size in memory, so the cache stays within tens of MiB whatever
the records. Records of the standard mix (about 400 bytes) reach the count first."""

WINDOW = 4096
"""Misses between two judgements of whether kept records are taken (see the module doc)."""

SAMPLE = 32
"""While records are not taken, one miss in this many is kept: enough to see the destinations come back in step
within a window (about 44 sampled records per window of three destinations), few enough to cost nothing."""

MIN_USE = 0.25
"""Hits per record kept in a window below which the cache samples. In step, each kept record is taken once per other
destination in step (2 with three destinations, 1 with two, about 0.5 with one of three running ahead alone)."""


class DecodeCache:
    """The last records decoded by a gateway's pipelines, for the others to take (see the module doc): at most
    `capacity` of them and `max_bytes` of their values, the oldest dropped first."""

    __slots__ = (
        "_bytes",
        "_capacity",
        "_entries",
        "_every",
        "_limit",
        "_max_bytes",
        "_order",
        "_skip",
        "_window_hits",
        "_window_kept",
        "_window_misses",
        "hits",
        "misses",
    )

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if capacity < 1 or max_bytes < 1:
            raise ValueError("a decode cache holds at least one record and one byte")
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0  # of the values held
        self._entries: dict[tuple[str, int, int], tuple[bytes, Event]] = {}
        self._order: deque[tuple[str, int, int]] = deque()  # keys, oldest first (a dict's first key is slow to drop)
        self.hits = 0
        self.misses = 0
        self._every = 1  # keep one miss in this many: 1, or SAMPLE while kept records are not taken
        self._limit = capacity  # records held at most: the capacity, or capacity / SAMPLE while sampling
        self._skip = 0  # misses to let pass before the next one is kept
        self._window_misses = WINDOW
        self._window_hits = 0
        self._window_kept = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def sampling(self) -> bool:
        """True while the cache keeps only one miss in SAMPLE (its kept records were not being taken)."""
        return self._every > 1

    @property
    def held_bytes(self) -> int:
        """Value bytes held now."""
        return self._bytes

    def decode(self, message: Any) -> Event:
        """The event of a Kafka record: the one another destination decoded, else decoded here (and kept, unless
        its value alone is over `max_bytes`).

        Raises what `events.decode` raises for a record that cannot be decoded."""
        key = (message.topic, message.partition, message.offset)
        value = message.value
        entries = self._entries
        entry = entries.get(key)
        if entry is not None and entry[0] == value:
            self.hits += 1
            self._window_hits += 1
            return entry[1]
        self.misses += 1
        event = decode(value)
        size = len(value)
        if self._skip:
            self._skip -= 1
        elif size <= self._max_bytes:
            self._skip = self._every - 1
            self._window_kept += 1
            if entry is None:
                self._order.append(key)
            else:
                self._bytes -= len(entry[0])
            entries[key] = (value, event)
            self._bytes += size
            if len(self._order) > self._limit or self._bytes > self._max_bytes:
                self._evict()
        self._window_misses -= 1
        if self._window_misses == 0:  # after the record is kept: a judgement may drop any record held
            self._judge()
        return event

    def _evict(self) -> None:
        """Drop the oldest records until at most `_limit` of them and `max_bytes` of their values are held."""
        entries, order = self._entries, self._order
        while len(order) > self._limit or self._bytes > self._max_bytes:
            dropped = entries.pop(order.popleft())
            self._bytes -= len(dropped[0])

    def _judge(self) -> None:
        """End a window: sample while fewer than MIN_USE hits came per record kept, keep every miss otherwise."""
        hits, kept = self._window_hits, self._window_kept
        self._window_misses, self._window_hits, self._window_kept = WINDOW, 0, 0
        if kept == 0:  # nothing small enough to keep: nothing to judge
            return
        every = 1 if hits >= MIN_USE * kept else SAMPLE
        if every != self._every:
            self._every, self._skip = every, 0
            self._limit = self._capacity if every == 1 else max(1, self._capacity // SAMPLE)
            self._evict()
