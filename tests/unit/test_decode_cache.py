"""The decode cache a gateway's pipelines share: a hit only for the same record, bounded, failures never kept."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from devkit.testbed.traffic import Traffic, message
from gateway.decode_cache import DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, MIN_USE, SAMPLE, WINDOW, DecodeCache
from gateway.errors import EventError
from gateway.events import decode


def _record(offset: int, value: bytes | None, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=partition, offset=offset, value=value)


def _values(count: int) -> list[bytes]:
    return [message(event)[1] for event in Traffic(seed=8, players=500).stream(count)]


def test_a_second_reader_of_a_record_takes_the_first_ones_event() -> None:
    """Two destinations reading the same records: each is decoded once, the second reader gets the same event."""
    cache = DecodeCache()
    values = _values(200)
    first = [cache.decode(_record(offset, value)) for offset, value in enumerate(values)]
    second = [cache.decode(_record(offset, bytes(value))) for offset, value in enumerate(values)]  # its own bytes
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert first == [decode(value) for value in values]
    assert (cache.hits, cache.misses) == (200, 200)


def test_other_bytes_at_the_same_coordinates_are_decoded_not_taken() -> None:
    """A record is never taken for another: same topic, partition and offset but other bytes (a topic created
    again) decodes those bytes."""
    cache = DecodeCache()
    one, other = _values(2)
    cache.decode(_record(5, one))
    assert cache.decode(_record(5, other)) == decode(other)
    assert cache.decode(_record(5, other, partition=1)) == decode(other)
    assert cache.hits == 0
    assert cache.decode(_record(5, other)) == decode(other)  # the newer bytes are what is kept now
    assert cache.hits == 1


def test_records_that_fail_to_decode_fail_for_every_reader_and_are_not_kept() -> None:
    """Each destination dead-letters an undecodable record itself: the error reaches every reader."""
    cache = DecodeCache()
    poison = [b"{not json", orjson.dumps({"type": "deposit"}), None]
    for _reader in range(2):  # two destinations
        for offset, value in enumerate(poison):
            with pytest.raises(EventError):
                cache.decode(_record(offset, value))
    assert len(cache) == 0
    assert cache.hits == 0


def test_the_cache_stays_within_its_capacity_over_many_times_its_size() -> None:
    """Two readers in step, at the default capacity, records far beyond it: never more than the capacity held, the
    oldest dropped first, the newest still there for a reader in step."""
    cache = DecodeCache()
    values = _values(500)
    total = DEFAULT_CAPACITY * 6
    for offset in range(total):
        value = values[offset % len(values)]
        cache.decode(_record(offset, value))
        cache.decode(_record(offset, value))  # the second reader, in step
        assert len(cache) <= DEFAULT_CAPACITY
    assert (cache.hits, cache.misses) == (total, total)
    assert not cache.sampling
    assert len(cache) == DEFAULT_CAPACITY
    misses = cache.misses
    cache.decode(_record(total - DEFAULT_CAPACITY, values[(total - DEFAULT_CAPACITY) % len(values)]))  # oldest kept
    assert cache.misses == misses
    cache.decode(_record(total - DEFAULT_CAPACITY - 1, values[(total - DEFAULT_CAPACITY - 1) % len(values)]))
    assert cache.misses == misses + 1  # dropped: decoded again


def _drain_apart(cache: DecodeCache, values: list[bytes], readers: int, gap: int) -> list[list[object]]:
    """`readers` destinations draining `values` `gap` records apart (the first one ahead), as on a backlog; returns
    each reader's events."""
    seen: list[list[object]] = [[] for _ in range(readers)]
    for step in range(len(values) + gap * (readers - 1)):
        for reader in range(readers):
            offset = step - reader * gap
            if 0 <= offset < len(values):
                seen[reader].append(cache.decode(_record(offset, values[offset])))
    return seen


def test_records_no_reader_takes_are_sampled_not_kept() -> None:
    """Three destinations draining a backlog further apart than the cache holds (no lookup can hit): after the first
    window of misses the cache keeps one record in SAMPLE, and holds at most capacity / SAMPLE of them, not 4,096
    events for the collector to walk. Every reader still gets every event, decoded as `decode` does it."""
    values = _values(3 * WINDOW)
    cache = DecodeCache()
    seen = _drain_apart(cache, values, readers=3, gap=DEFAULT_CAPACITY + 1)
    assert cache.hits == 0
    assert len(cache) <= DEFAULT_CAPACITY // SAMPLE
    assert cache.sampling
    expected = [decode(value) for value in values]
    assert all(events == expected for events in seen)


def test_readers_back_in_step_get_the_cache_back_within_two_windows() -> None:
    """A sampling cache whose destinations read in step again (the backlog drained, all at the head of the log):
    the sampled records are taken, and within two windows of misses every record is kept again, and taken."""
    values = _values(12 * WINDOW)
    cache = DecodeCache()
    apart, in_step = values[: 3 * WINDOW], values[3 * WINDOW :]
    _drain_apart(cache, apart, readers=3, gap=DEFAULT_CAPACITY + 1)
    assert cache.sampling
    start = len(apart)
    while cache.sampling:
        for _reader in range(3):
            cache.decode(_record(start, in_step[start - len(apart)]))
        start += 1
        assert start - len(apart) <= 2 * WINDOW, "still sampling after two windows of in-step reads"
    hits, misses = cache.hits, cache.misses
    for offset in range(start, len(values)):  # from here on, every record is decoded once for the three
        for _reader in range(3):
            cache.decode(_record(offset, values[offset]))
    remaining = len(values) - start
    assert remaining > 4 * WINDOW
    assert (cache.misses - misses, cache.hits - hits) == (remaining, 2 * remaining)


def test_one_reader_ahead_of_two_in_step_keeps_the_cache() -> None:
    """Unibo far ahead, Enable3 and UserWise in step behind it: half of the kept records are taken (the ones the
    leading destination keeps are dropped before the others come), above MIN_USE, so the two in step share."""
    assert MIN_USE < 0.5
    values = _values(3 * WINDOW)
    cache = DecodeCache()
    seen: list[list[object]] = [[], [], []]
    gap = DEFAULT_CAPACITY  # the leader's records are dropped before the followers read them
    for step in range(len(values) + gap):
        if step < len(values):
            seen[0].append(cache.decode(_record(step, values[step])))
        if step >= gap:
            for reader in (1, 2):
                seen[reader].append(cache.decode(_record(step - gap, values[step - gap])))
    assert not cache.sampling
    assert cache.hits >= len(values) - DEFAULT_CAPACITY  # the second follower took nearly every record
    expected = [decode(value) for value in values]
    assert all(events == expected for events in seen)


def _large(index: int, size: int) -> bytes:
    """A valid custom event of about `size` bytes (attributes take long text)."""
    event = {
        "event_id": f"big-{index}",
        "type": "custom",
        "name": "upload",
        "occurred_at": "2026-01-01T00:00:00Z",
        "player_id": f"p{index % 7}",
        "attributes": {"blob": "x" * size},
    }
    return orjson.dumps(event)


def test_large_records_are_held_within_the_byte_bound() -> None:
    """Records of 200 KiB, far more of them than the byte bound takes (the count would let 4,096 of them, 800 MiB,
    stay resident after they settled): the values held never pass DEFAULT_MAX_BYTES, and the newest are kept."""
    cache = DecodeCache()
    values = [_large(index, 200 * 1024) for index in range(200)]
    for offset, value in enumerate(values):
        cache.decode(_record(offset, value))
        assert cache.held_bytes <= DEFAULT_MAX_BYTES
    assert 0 < len(cache) <= DEFAULT_MAX_BYTES // (200 * 1024)
    assert cache.held_bytes == sum(len(value) for value in values[-len(cache) :])
    misses = cache.misses
    cache.decode(_record(len(values) - 1, values[-1]))
    assert cache.misses == misses  # the newest is there for a reader in step


def test_a_record_larger_than_the_byte_bound_is_decoded_but_not_kept() -> None:
    cache = DecodeCache(max_bytes=64 * 1024)
    small, large = _values(1)[0], _large(0, 100 * 1024)
    cache.decode(_record(0, small))
    assert cache.decode(_record(1, large)) == decode(large)
    assert len(cache) == 1
    assert cache.held_bytes == len(small)
    cache.decode(_record(0, small))
    assert cache.hits == 1  # what was held stays


def test_a_cache_refuses_to_hold_nothing() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DecodeCache(0)
    with pytest.raises(ValueError, match="at least one"):
        DecodeCache(max_bytes=0)


def test_a_judgement_on_the_miss_of_a_record_held_with_other_bytes_keeps_the_bounds_true() -> None:
    """The window's last miss is a record whose coordinates are held with other bytes (a topic created again), and
    the judgement there starts sampling, which drops most records: the cache's count of held bytes stays the sum of
    the values it holds, and every record it holds can still be dropped."""
    cache = DecodeCache()
    values = _values(WINDOW + 1)
    for offset in range(WINDOW - 1):  # one reader alone: kept, never taken
        cache.decode(_record(offset, values[offset]))
    cache.decode(_record(0, values[WINDOW]))  # the window's last miss: offset 0 again, other bytes
    assert cache.sampling
    held = cache._entries  # the invariant under test: held bytes and the drop order match the records held
    assert cache.held_bytes == sum(len(value) for value, _ in held.values())
    assert set(held) == set(cache._order)
    limit = DEFAULT_CAPACITY // SAMPLE
    for offset in range(WINDOW, WINDOW + (limit + 1) * SAMPLE):  # kept records enough to drop all held before
        cache.decode(_record(offset, values[offset % len(values)]))
    assert len(cache) == limit
    assert all(key[2] >= WINDOW for key in cache._entries)
