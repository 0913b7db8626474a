"""The order of parked events across processes: what a parked record says it waits for, and the readers' gate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from gateway.config import KafkaConfig
from gateway.delivery import Tenant
from gateway.errors import ConfigError
from gateway.load import Bound, Load
from gateway.offsets import PartitionOffsets
from gateway.parked_records import AFTER_HEADER, OrderAfter, order_after, parked_headers, unparked
from gateway.parking import held_after, held_offsets
from gateway.parking_order import CHECK_PERIOD, OrderGate
from gateway.parking_reader import ParkingReader
from tests.unit.helpers import make_item, make_parking, two_brand_config


@dataclass
class _Message:
    topic: str = "events"
    partition: int = 3
    offset: int = 41
    key: bytes | None = b"player-1"
    value: bytes | None = b"{}"
    headers: tuple[tuple[str, bytes], ...] = (("trace", b"t-1"),)


@dataclass
class _Record:
    headers: list[tuple[str, bytes]]
    topic: str = "gw.unibo.parked"
    partition: int = 0
    offset: int = 7
    key: bytes | None = b"player-1"
    value: bytes | None = b"{}"


@dataclass
class _Source:
    """This process's trackers, and the group's commits as the broker would answer them."""

    trackers: dict[TopicPartition, PartitionOffsets] = field(default_factory=dict)
    commits: dict[TopicPartition, int] = field(default_factory=dict)
    asked: int = 0

    def tracking(self, topic: str, partition: int) -> PartitionOffsets | None:
        return self.trackers.get(TopicPartition(topic, partition))

    async def committed(self, topic: str, partition: int) -> int | None:
        self.asked += 1
        return self.commits.get(TopicPartition(topic, partition))


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(source: _Source, patience: float = 60.0) -> tuple[OrderGate, _Clock, _Log, list[int]]:
    clock, log, timeouts = _Clock(), _Log(), []
    gate = OrderGate(source, patience, lambda: timeouts.append(1), log, clock)
    return gate, clock, log, timeouts


def test_a_record_parked_behind_held_ones_names_them_and_reads_back_without_the_header() -> None:
    headers = parked_headers(_Message(), "unibo", "casino-b", (39, "a1b2"))
    record = _Record(headers)
    assert order_after(record) == OrderAfter("events", 3, 39, "a1b2")
    message = unparked(record)
    assert (message.topic, message.partition, message.offset) == ("events", 3, 41)
    assert message.headers == (("trace", b"t-1"),)  # the gateway's own headers never reach a vendor or a dead letter
    assert order_after(_Record(parked_headers(_Message(), "unibo", "casino-b"))) is None


def test_an_unreadable_wait_header_is_no_wait() -> None:
    for value in (b"", b"x1 a", b"-5 a", b"\xb2 a"):
        headers = [*parked_headers(_Message(), "unibo", "casino-b"), (AFTER_HEADER, value)]
        assert order_after(_Record(headers)) is None, value


def test_the_held_offsets_are_those_of_the_brand_still_unsettled_at_parking() -> None:
    tracker, other = PartitionOffsets(), PartitionOffsets()
    for offset in range(10):
        tracker.track(offset, 1)
    other.track(0, 1)
    tracker.settle(4)
    items = [make_item(2, tracker), make_item(4, tracker), make_item(7, tracker), make_item(2, tracker)]
    held = held_offsets([*items, make_item(0, other)])  # an item twice: one record of a message in two lanes
    assert held == {tracker: [2, 7], other: [0]}
    assert held_after(held, tracker) == (7, tracker.token)
    tracker.settle(7)  # the highest settles first: the wait falls back to the next one still held
    assert held_after(held, tracker) == (2, tracker.token)
    tracker.settle(2)
    assert held_after(held, tracker) is None
    assert tracker not in held
    assert held_after(held, PartitionOffsets()) is None
    other.close()  # revoked: what it held is read again by the next owner, and parks nothing more here
    assert held_after(held, other) is None


async def test_the_tracking_that_held_the_records_lets_its_own_parked_records_through() -> None:
    tracker = PartitionOffsets()
    tracker.track(39, 1)
    source = _Source(trackers={TopicPartition("events", 3): tracker})
    gate, _, _, _ = _gate(source)
    assert gate.open(OrderAfter("events", 3, 39, tracker.token))  # its lanes hold the older records: order holds
    assert not gate.open(OrderAfter("events", 3, 39, "token-of-an-earlier-owner"))
    assert source.asked == 0


async def test_elsewhere_a_record_waits_until_the_groups_commit_passes_what_was_held() -> None:
    source = _Source()
    tp = TopicPartition("events", 3)
    gate, clock, log, timeouts = _gate(source)
    wait = OrderAfter("events", 3, 39, "held-elsewhere")
    assert not gate.open(wait)
    assert not await gate.refresh(wait)  # no commit yet
    source.commits[tp] = 39  # the held record at 39 not settled yet
    clock.now += CHECK_PERIOD
    assert not await gate.refresh(wait)
    asked = source.asked
    assert not await gate.refresh(wait)  # within CHECK_PERIOD of the last look: the broker is not asked again
    assert source.asked == asked
    source.commits[tp] = 40
    clock.now += CHECK_PERIOD
    assert await gate.refresh(wait)
    assert gate.open(wait)
    assert gate.open(OrderAfter("events", 3, 12, "held-elsewhere"))
    assert not gate.open(OrderAfter("events", 3, 40, "held-elsewhere"))
    assert not gate.open(OrderAfter("events", 4, 12, "held-elsewhere"))  # another partition's commit is its own
    assert (timeouts, log.warnings) == ([], [])


async def test_owning_the_partition_now_the_own_trackers_position_decides() -> None:
    """Taken over after a rebalance or restart: the older records were read again into this process's lanes."""
    tracker = PartitionOffsets()
    for offset in range(35, 45):
        tracker.track(offset, 1)
    source = _Source(trackers={TopicPartition("events", 3): tracker})
    gate, _, _, _ = _gate(source)
    wait = OrderAfter("events", 3, 39, "token-of-the-previous-owner")
    for offset in range(35, 39):
        tracker.settle(offset)
    assert not await gate.refresh(wait)
    tracker.settle(39)
    assert await gate.refresh(wait)
    assert source.asked == 0


async def test_a_wait_that_makes_no_progress_for_the_patience_gives_up_once_and_is_counted() -> None:
    source = _Source()
    tp = TopicPartition("events", 3)
    source.commits[tp] = 10  # held below by something that does not move (another brand's stuck record)
    gate, clock, log, timeouts = _gate(source, patience=60.0)
    wait = OrderAfter("events", 3, 39, "held-elsewhere")
    assert not await gate.refresh(wait)
    clock.now += 30
    source.commits[tp] = 20  # progress: the patience starts again
    assert not await gate.refresh(wait)
    clock.now += 59
    assert not await gate.refresh(wait)
    clock.now += 1
    assert await gate.refresh(wait)
    assert len(timeouts) == 1
    assert log.warnings[0][1]["waited_for_offset"] == 39
    assert gate.open(OrderAfter("events", 3, 39, "held-elsewhere"))  # the rest of that wait goes without asking
    assert gate.open(OrderAfter("events", 3, 25, "held-elsewhere"))
    assert not gate.open(OrderAfter("events", 3, 45, "held-elsewhere"))  # a later wait is waited for again
    assert len(timeouts) == 1


class _Consumer:
    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def assignment(self) -> set[TopicPartition]:
        return {PARKING}


PARKING = TopicPartition("gw.unibo.parked", 0)


def _parked(offset: int, tenant: str, after: tuple[int, str] | None = None) -> _Record:
    message = _Message(offset=100 + offset)
    return _Record(parked_headers(message, "unibo", tenant, after), offset=offset)


def _reader(gate: OrderGate, ingested: list[int]) -> ParkingReader:
    def ingest(tracker: PartitionOffsets, offset: int, message: Any) -> None:
        tracker.track(offset, 1)
        ingested.append(offset)

    return ParkingReader(
        KafkaConfig.model_validate(
            {"bootstrap_servers": "localhost:1", "topics": ["events"], "dlq_topic": "events.dlq"}
        ),
        PARKING.topic,
        "gw.unibo.parked.casino-b",
        Tenant("casino-b", None),
        Bound(1000, 1 << 20),
        Load(),
        ingest,
        lambda: None,
        lambda: False,
        gate,
    )


async def test_a_reader_holds_a_waiting_record_and_everything_behind_it_in_order() -> None:
    source = _Source()
    gate, clock, _, _ = _gate(source)
    ingested: list[int] = []
    reader, consumer = _reader(gate, ingested), _Consumer()
    records = [
        _parked(0, "casino-a"),
        _parked(1, "casino-b"),
        _parked(2, "casino-b", (39, "held-elsewhere")),
        _parked(3, "casino-b"),
        _parked(4, "casino-a"),
    ]
    reader._take(consumer, PARKING, records)
    assert ingested == [1]
    assert consumer.paused == {PARKING}
    reader._take(consumer, PARKING, [_parked(5, "casino-b")])  # fetched before the pause
    await reader._release(consumer)
    assert ingested == [1]
    assert reader._partitions[PARKING].committable() == 1  # nothing past the waiting record is committed
    source.commits[TopicPartition("events", 3)] = 40
    clock.now += CHECK_PERIOD
    await reader._release(consumer)
    assert ingested == [1, 2, 3, 5]
    assert consumer.paused == set()
    for offset in ingested:
        reader._partitions[PARKING].settle(offset)
    assert reader._partitions[PARKING].committable() == 6


async def test_a_revoked_partition_forgets_what_waited_and_commits_nothing_past_it() -> None:
    gate, _, _, _ = _gate(_Source())
    ingested: list[int] = []
    reader, consumer = _reader(gate, ingested), _Consumer()
    reader._take(consumer, PARKING, [_parked(0, "casino-b"), _parked(1, "casino-b", (39, "elsewhere"))])
    reader._partitions[PARKING].settle(0)
    tracker = reader._partitions[PARKING]
    assert tracker.committable() == 1
    await reader.revoked([PARKING])  # commits what settled (no consumer yet: nothing to call), then forgets
    assert reader._waiting == {}
    assert ingested == [0]


class _IdleReader:
    """What the supervisor reads of a reader: handed-on records not settled, and records held back for order."""

    def __init__(self, waiting: int) -> None:
        self.pending = 0
        self.waiting = waiting
        self.read = 0
        self.joined = True


async def test_a_brand_back_to_direct_keeps_its_reader_while_it_holds_records_back_for_order() -> None:
    """They may be another process's parked events that nobody else reads before the next start."""
    parking = make_parking(two_brand_config(), _Source())
    state = parking._states["casino-b"]  # not parking (flipped back to direct delivery)
    reader = _IdleReader(waiting=3)
    stop = state.reader_stop
    state.reader = reader  # type: ignore[assignment]

    async def run() -> None:
        await stop.wait()

    state.reader_task = asyncio.create_task(run())
    await parking._supervise(state)
    assert state.reader_task is not None and not stop.is_set()
    reader.waiting = 0
    await parking._supervise(state)
    assert state.reader_task is None and stop.is_set()


def _patience(parking: dict[str, Any] | None, halt_probe: float) -> float:
    sections: dict[str, Any] = {"retry": {"halt_probe": halt_probe}}
    if parking is not None:
        sections["parking"] = parking
    return make_parking(two_brand_config(**sections), _Source())._order_patience


def test_the_order_patience_defaults_to_the_probe_interval_and_can_be_set() -> None:
    """Replicas with different halt_probe values set it above twice the longest, so none gives up early."""
    assert _patience(None, 0.5) == 60.0
    assert _patience(None, 45.0) == 100.0
    assert _patience({"order_patience": "5m"}, 0.5) == 300.0
    with pytest.raises(ConfigError, match=r"parking\.order_patience: Input should be greater than 0"):
        _patience({"order_patience": 0}, 0.5)
