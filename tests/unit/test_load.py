"""In-flight load in bytes: what trackers add and release, the bounds' hysteresis, and per-tenant chain room."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.batcher import Item
from gateway.connector import VendorRecord
from gateway.key_chains import KeyChains
from gateway.load import HOLD, MESSAGE_OVERHEAD, RECORD_OVERHEAD, Bound, Hold, Load, message_bytes, records_bytes
from gateway.offsets import PartitionOffsets


class Message:
    """The parts of a ConsumerRecord the load reads."""

    def __init__(self, value: bytes, key: bytes | None = None, headers: Any = ()) -> None:
        self.value = value
        self.key = key
        self.headers = headers


def test_a_message_costs_its_value_key_headers_and_the_overhead() -> None:
    message = Message(b"x" * 1000, b"player-1", [("trace", b"abc"), ("empty", None)])
    assert message_bytes(message) == MESSAGE_OVERHEAD + 1000 + 8 + len("trace") + 3 + len("empty")
    records = [VendorRecord("r", b"y" * 300, "p", "1"), VendorRecord("r", b"z" * 10, "p", "2")]
    assert records_bytes(records) == 310 + 2 * RECORD_OVERHEAD
    assert records_bytes(records[:1]) == 300 + RECORD_OVERHEAD
    assert records_bytes([]) == 0


def test_trackers_release_bytes_when_the_message_settles() -> None:
    load = Load()
    offsets = PartitionOffsets()
    offsets.track(0, 2, load, 5000)
    offsets.track(1, 1, load, 700)
    offsets.track(2, 0, load, 999)  # settled at once: never held
    assert (load.events, load.bytes) == (2, 5700)
    offsets.settle(0)
    assert (load.events, load.bytes) == (2, 5700)  # one of its two records still on its way
    offsets.settle(0)
    offsets.settle(1)
    assert (load.events, load.bytes) == (0, 0)


def test_a_closed_tracker_releases_what_it_held_once() -> None:
    load = Load()
    offsets = PartitionOffsets()
    for offset in range(10):
        offsets.track(offset, 1, load, 100)
    offsets.settle(3)
    assert offsets.close() == 9
    assert (load.events, load.bytes) == (0, 0)
    offsets.settle(4)  # late settle after revocation
    assert (load.events, load.bytes) == (0, 0)


def test_a_million_settled_messages_leave_only_the_unsettled_one_held() -> None:
    load = Load()
    offsets = PartitionOffsets()
    offsets.track(0, 1, load, 1_000_000)
    for offset in range(1, 1_000_001):
        offsets.track(offset, 1, load, 1000)
        offsets.settle(offset)
    assert (load.events, load.bytes) == (1, 1_000_000)
    assert len(offsets._held) == 1


def test_a_bound_is_full_at_either_count_or_bytes_and_clears_at_half_of_both() -> None:
    bound = Bound(100, 10_000)
    load = Load()
    for _ in range(10):
        load.add(1000)
    assert bound.check(load, 5.0)  # 10 messages, but 10,000 bytes
    assert bound.full_since == 5.0
    load.release(1000)
    load.release(1000)
    assert bound.check(load, 6.0)  # 8,000 bytes: still above half
    for _ in range(3):
        load.release(1000)
    assert not bound.check(load, 7.0)  # 5,000 bytes: half
    assert bound.room(load, 1000) == 5
    for _ in range(5):
        load.add(1)
    assert bound.room(load, 10) == min(100 - 10, (10_000 - 5005) // 10)


async def test_one_tenants_running_deliveries_leave_room_for_another() -> None:
    """A tenant whose players' deliveries are all stuck fills only its own room: another tenant's lane goes on."""
    chains = KeyChains("unibo")
    stuck = asyncio.Event()

    async def hang(items: list[Item]) -> None:
        await stuck.wait()

    def groups(prefix: str, count: int) -> list[list[Item]]:
        return [[_item(f"{prefix}-{index}")] for index in range(count)]

    held = groups("b", 4)
    chains.start("casino-b", held, hang, lambda: None)
    assert chains.held("casino-b") == [item for group in held for item in group]  # what parking notes as held
    assert chains.held("casino-a") == []
    await asyncio.wait_for(chains.room("casino-a", 4), 1)  # returns at once: casino-a runs nothing
    waiting = asyncio.create_task(chains.room("casino-b", 4))
    await asyncio.sleep(0)
    assert not waiting.done()  # casino-b is at its limit
    assert chains.running("casino-b") == 4
    stuck.set()
    await asyncio.wait_for(waiting, 1)
    await chains.wait()
    assert chains.running("casino-b") == 0
    assert chains.held("casino-b") == []


def _item(key: str) -> Item:
    return Item(VendorRecord("r", b"{}", key, key), PartitionOffsets(), 0, "deposit", 0.0, 0.0, None)


def test_a_load_held_aside_counts_against_the_bound_but_not_against_getting_back_to_half() -> None:
    """A halted brand's share (held aside) above half of the destination's bound: once the others drain to half of
    what it leaves, the bound is no longer full; counted as an ordinary load, it would stay full for good."""
    bound, plain, total, aside = Bound(1000, 100_000), Bound(1000, 100_000), Load(), Load()
    for _ in range(51):
        aside.add(1000)  # 51,000 bytes: above half of the bound, and never drained
        total.add(1000)
    for _ in range(49):
        total.add(1000)
    assert bound.check(total, 1.0, aside)  # 100,000 bytes: full
    assert plain.check(total, 1.0)
    for _ in range(24):
        total.release(1000)
    assert bound.check(total, 2.0, aside)  # the rest: 25,000 of the 49,000 aside leaves, above half
    total.release(1000)
    assert not bound.check(total, 3.0, aside)  # 24,000: at half
    assert bound.room(total, 1000) == 25  # the share held aside still takes its room: 100,000 - 75,000 bytes
    for _ in range(24):
        total.release(1000)
    assert plain.check(total, 4.0)  # everything else drained, but 51,000 > 50,000: full for as long as it is held


def test_half_full_from_half_the_bound_by_count_or_bytes() -> None:
    bound = Bound(100, 10_000)
    load = Load()
    for _ in range(49):
        load.add(10)
    assert not bound.half_full(load)
    load.add(10)
    assert bound.half_full(load)  # 50 of 100 events
    heavy = Load()
    heavy.add(5_000)
    assert bound.half_full(heavy)  # half the bytes, one event
    assert not bound.full  # half_full never changes the hysteresis state


def test_half_full_leaves_out_what_is_held_aside() -> None:
    """A parked brand's share (held aside) counts neither in the load nor in the bound: 60 events aside of a bound of
    100 leave 40, of which 20 is half."""
    bound = Bound(100, 1_000_000)
    aside, load = Load(), Load()
    for _ in range(60):
        aside.add(10)
        load.add(10)
    assert bound.half_full(load)  # counted whole, 60 of 100
    assert not bound.half_full(load, aside)  # nothing but the parked share is held
    for _ in range(19):
        load.add(10)
    assert not bound.half_full(load, aside)  # 19 of 40
    load.add(10)
    assert bound.half_full(load, aside)  # 20 of 40


class _Consumer:
    """The pause and resume of an aiokafka consumer, recorded."""

    def __init__(self, assigned: set[str]) -> None:
        self.assigned = assigned
        self.paused: set[str] = set()

    def assignment(self) -> set[str]:
        return self.assigned

    def pause(self, *partitions: str) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: str) -> None:
        self.paused.difference_update(partitions)


def test_a_hold_skips_polls_up_to_its_limit_then_pauses_then_resumes_all_but_those_kept() -> None:
    """At the bound: no poll and nothing paused for HOLD seconds; past them every assigned partition is paused, the
    polls go on; below the bound, the partitions are resumed, but for those kept paused."""
    consumer, hold = _Consumer({"a", "b", "c"}), Hold()
    assert hold.holds(consumer, True, 100.0) and hold.holds(consumer, True, 100.0 + HOLD - 0.01)
    assert consumer.paused == set() and not hold.paused
    assert not hold.holds(consumer, True, 100.0 + HOLD)
    assert consumer.paused == {"a", "b", "c"} and hold.paused
    assert not hold.holds(consumer, False, 106.0, keep_paused={"c"})
    assert consumer.paused == {"c"} and not hold.paused
    assert hold.holds(consumer, True, 107.0)  # a new stay at the bound holds afresh
