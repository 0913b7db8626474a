"""Unit tests for the batcher: count, bytes and linger bounds."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable

import orjson
from prometheus_client import CollectorRegistry, Histogram

from gateway.batcher import Batcher, Item, Lane
from gateway.connector import record_body
from gateway.destination import BatchLimits
from gateway.metrics import observe_many, observe_one
from gateway.offsets import PartitionOffsets
from tests.unit.helpers import make_item


def test_full_by_count() -> None:
    """A batch is full at max_events and take() cuts exactly that many, in order."""
    batcher = Batcher(BatchLimits(max_events=3, max_bytes=10_000, linger=1.0))
    results = [batcher.add(make_item(i), now=0.0) for i in range(5)]
    assert results == [False, False, True, True, True]
    batch = batcher.take(now=0.0)
    assert [item.offset for item in batch] == [0, 1, 2]
    assert [item.offset for item in batcher.take(now=0.0)] == [3, 4]
    assert len(batcher) == 0


def test_full_by_bytes() -> None:
    """Bytes bound a batch: take() never exceeds max_bytes (counting one separator per record)."""
    batcher = Batcher(BatchLimits(max_events=100, max_bytes=35, linger=1.0))
    for i in range(5):
        batcher.add(make_item(i, size=10), now=0.0)
    assert batcher.full()
    batch = batcher.take(now=0.0)
    assert len(batch) == 3
    assert sum(len(item.record.body) + 1 for item in batch) <= 35


def test_oversized_record_still_goes_alone() -> None:
    """A record larger than max_bytes is sent alone rather than stuck forever."""
    batcher = Batcher(BatchLimits(max_events=100, max_bytes=20, linger=1.0))
    batcher.add(make_item(0, size=50), now=0.0)
    batcher.add(make_item(1, size=5), now=0.0)
    assert [item.offset for item in batcher.take(now=0.0)] == [0]
    assert [item.offset for item in batcher.take(now=0.0)] == [1]


def test_linger_counts_from_oldest_item() -> None:
    """A partial batch is due linger seconds after its first item arrived."""
    batcher = Batcher(BatchLimits(max_events=100, max_bytes=10_000, linger=0.5))
    batcher.add(make_item(0), now=10.0)
    batcher.add(make_item(1), now=10.4)
    assert batcher.due_in(10.2) > 0
    assert batcher.due_in(10.5) <= 0


def test_purge_drops_revoked_items_only() -> None:
    """Purging removes the items of a closed partition and keeps the byte count right."""
    batcher = Batcher(BatchLimits(max_events=100, max_bytes=10_000, linger=0.5))
    kept, revoked = PartitionOffsets(), PartitionOffsets()
    for i in range(4):
        batcher.add(make_item(i, offsets=revoked if i % 2 else kept), now=0.0)
    revoked.close()
    assert batcher.purge(lambda item: not item.offsets.closed) == 2
    assert [item.offset for item in batcher.take(now=0.0)] == [0, 2]


def test_bulk_histogram_observe_matches_observe() -> None:
    """observe_many and observe_one record exactly what one observe() per value would (buckets, count and sum),
    bounds included."""
    values = [0.0, 0.004, 0.005, 0.0051, 0.3, 2.0, 7.5, 99.0, 5000.0, 0.25]
    one, bulk = CollectorRegistry(), CollectorRegistry()
    buckets = (0.005, 0.25, 1.0, 10.0, 100.0)
    single = Histogram("h", "h", ["d"], buckets=buckets, registry=one).labels("x")
    many = Histogram("h", "h", ["d"], buckets=buckets, registry=bulk).labels("x")
    for value in values:
        single.observe(value)
    observe_many(many, values[:-2])
    observe_many(many, values[-2:-1])  # one value: observe_one's way
    observe_one(many, values[-1])
    samples = [
        (s.name, s.labels.get("le"), s.value) for m in one.collect() for s in m.samples if "created" not in s.name
    ]
    bulk_samples = [
        (s.name, s.labels.get("le"), s.value) for m in bulk.collect() for s in m.samples if "created" not in s.name
    ]
    assert samples == bulk_samples


def test_record_body_is_compact() -> None:
    """record_body holds exactly the JSON bytes, not orjson's ~4 KiB buffer (memory per in-flight record)."""
    value = {"event": "login", "data": {"unique_id": "u1", "timestamp": "2026-01-01T00:00:00Z", "player_id": "p"}}
    assert record_body(value) == orjson.dumps(value)
    tracemalloc.start()
    try:
        bodies = [record_body(value) for _ in range(500)]
        allocated = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(bodies) == 500
    assert allocated / 500 < 1024


async def test_a_hurried_lane_sends_everything_it_holds_then_lingers_again() -> None:
    """hurry() sends every batch queued (full or not) without waiting for linger, and lasts until the lane is empty:
    the next record lingers again."""
    delivered: list[list[int]] = []
    arrived = asyncio.Event()

    async def deliver(items: list[Item]) -> None:
        delivered.append([item.offset for item in items])
        arrived.set()

    lane = Lane(Batcher(BatchLimits(max_events=100, max_bytes=1_000_000, linger=3600.0)), deliver)
    task = asyncio.create_task(lane.run())
    try:
        for offset in range(250):
            lane.add(make_item(offset), time.monotonic())
        await wait_until(lambda: len(delivered) == 2)  # the two full batches go at once
        await asyncio.sleep(0.05)
        assert len(delivered) == 2  # the remaining 50 linger
        lane.hurry()
        await wait_until(lambda: len(delivered) == 3)
        assert [len(batch) for batch in delivered] == [100, 100, 50]
        assert [offset for batch in delivered for offset in batch] == list(range(250))
        assert not lane.hurried
        lane.add(make_item(250), time.monotonic())
        await asyncio.sleep(0.05)
        assert len(delivered) == 3  # lingering again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.005)


async def test_a_lane_holds_the_batch_it_is_delivering_and_what_is_queued_behind_it() -> None:
    """What parking notes as a brand's held records (gateway.parking): the batch on its way, then the queue."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def deliver(items: list[Item]) -> None:
        started.set()
        await release.wait()

    lane = Lane(Batcher(BatchLimits(max_events=3, max_bytes=1_000_000, linger=0.0)), deliver)
    task = asyncio.create_task(lane.run())
    try:
        for offset in range(3):
            lane.add(make_item(offset), time.monotonic())
        await asyncio.wait_for(started.wait(), 5)
        for offset in range(3, 5):
            lane.add(make_item(offset), time.monotonic())
        assert [item.offset for item in lane.held()] == [0, 1, 2, 3, 4]
        release.set()
        await wait_until(lambda: not lane.held())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
