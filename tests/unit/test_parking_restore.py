"""After a rebalance, a process parks every brand with parked events its reader group has not read, and waits while
it cannot tell: the process that parked them may have left the group (gateway/parking.py, `restore`)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from gateway import binding
from gateway import parking as parking_module
from gateway.config import KafkaConfig
from gateway.delivery import Tenant
from gateway.load import HOLD, Bound, Load
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offsets import PartitionOffsets
from gateway.parking import Parking
from gateway.pipeline import Pipeline
from tests.integration.harness import gateway_config, unibo_destination

BRANDS = ("casino-a", "casino-b")
PARKED = "gw-events.unibo.parked"


def _tree() -> dict[str, Any]:
    tree = gateway_config("localhost:9092", "events", [unibo_destination("http://vendor.test")])
    tree["destinations"][0]["credentials"] = {brand: {"api_key": f"key-{brand}"} for brand in BRANDS}
    return tree


class _Source:
    def tracking(self, topic: str, partition: int) -> PartitionOffsets | None:
        return None

    async def committed(self, topic: str, partition: int) -> int | None:
        return None


class _Broker:
    """The reader groups' positions as `uncommitted` reads them; `down` makes it fail as an unreachable broker."""

    def __init__(self) -> None:
        self.behind: dict[str, dict[TopicPartition, int]] = {}
        self.down = False
        self.calls = 0

    async def uncommitted(self, kafka: KafkaConfig, topic: str, groups: list[str]) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise KafkaTimeoutError("no answer from Kafka within 5s")
        return {group: dict(self.behind.get(group, {})) for group in groups}


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> _Broker:
    fake = _Broker()
    monkeypatch.setattr(parking_module, "uncommitted", fake.uncommitted)
    return fake


def _parking() -> Parking:
    resolved = binding.parse(_tree(), env={})
    destination = resolved.destinations[0]
    tenants = {name: Tenant(name, None) for name in BRANDS}
    parking = Parking(
        destination,
        resolved.gateway.kafka,
        tenants,
        {name: Bound(100, 1 << 20) for name in tenants},
        {name: Load() for name in tenants},
        DestinationMetrics(Metrics(CollectorRegistry()), destination.name),
        lambda tracker, offset, message: None,
        lambda tracker, offset, message, reason, detail: None,
        lambda: None,
        lambda: False,
        lambda tenant: [],
        _Source(),
    )
    parking._writer = object()  # type: ignore[assignment]  # started: restore reads the positions
    return parking


async def test_a_brand_whose_reader_group_is_behind_is_parked_with_those_ends_as_targets(broker: _Broker) -> None:
    parking = _parking()
    state = parking._states["casino-b"]
    state.targets[TopicPartition(PARKED, 0)] = 50  # written here before: the higher target stays
    broker.behind[f"{PARKED}.casino-b"] = {TopicPartition(PARKED, 0): 40, TopicPartition(PARKED, 1): 7}
    await parking.restore()
    assert parking.parking == {"casino-b"}
    assert state.targets == {TopicPartition(PARKED, 0): 50, TopicPartition(PARKED, 1): 7}
    assert not parking.unchecked


async def test_positions_that_cannot_be_read_hold_consumption_until_they_can(broker: _Broker) -> None:
    parking = _parking()
    broker.down = True
    await parking.restore()
    assert parking.unchecked and parking.parking == set()
    broker.down = False
    broker.behind[f"{PARKED}.casino-a"] = {TopicPartition(PARKED, 2): 3}
    await parking.restore()  # what the supervisor does every RESTORE_RETRY seconds meanwhile
    assert not parking.unchecked
    assert parking.parking == {"casino-a"}


async def test_before_the_start_nothing_is_read(broker: _Broker) -> None:
    """The start reads the positions itself (and retries until it can)."""
    parking = _parking()
    parking._writer = None
    await parking.restore()
    assert broker.calls == 0 and not parking.unchecked


SOURCE = TopicPartition("events", 0)


class _Consumer:
    def __init__(self) -> None:
        self.stopped: set[TopicPartition] = set()

    @property
    def paused(self) -> bool:
        return bool(self.stopped)

    def assignment(self) -> set[TopicPartition]:
        return {SOURCE}

    def pause(self, *partitions: TopicPartition) -> None:
        self.stopped.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.stopped.difference_update(partitions)


async def test_the_pipeline_reads_nothing_while_the_positions_are_unknown() -> None:
    """Delivering a taken-over partition's records directly before knowing whether older events of the same players
    are parked could let them overtake those."""
    resolved = binding.parse(_tree(), env={})
    pipeline = Pipeline(resolved.destinations[0], resolved.gateway.kafka, None, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    parking = pipeline._parking
    assert parking is not None
    consumer = _Consumer()
    try:
        assert pipeline._apply_backpressure(consumer, 1.0) is not None  # reads
        parking.unchecked = True
        assert pipeline._apply_backpressure(consumer, 2.0) is None  # holds (no poll), then pauses
        pipeline._apply_backpressure(consumer, 2.0 + HOLD)
        assert consumer.paused
        parking.unchecked = False
        assert pipeline._apply_backpressure(consumer, 3.0 + HOLD) is not None and not consumer.paused
    finally:
        await pipeline._cancel_workers()


async def test_a_partition_assigned_while_the_positions_cannot_be_read_resumes_only_once_they_are() -> None:
    """Resumed at the end of its assignment, it would be read before the pipeline's next look at the bounds."""
    resolved = binding.parse(_tree(), env={})
    pipeline = Pipeline(resolved.destinations[0], resolved.gateway.kafka, None, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    parking = pipeline._parking
    assert parking is not None
    consumer = _Consumer()
    try:
        with pipeline.assigning(consumer, [SOURCE]):
            assert consumer.stopped == {SOURCE}
        assert consumer.stopped == set()  # prepared: resumed at once
        with pipeline.assigning(consumer, [SOURCE]):
            parking.unchecked = True  # the restore could not read the reader groups' positions
        assert consumer.stopped == {SOURCE}
        assert pipeline._apply_backpressure(consumer, 1.0) is None
        assert consumer.stopped == {SOURCE}
        parking.unchecked = False  # the supervisor read them
        assert pipeline._apply_backpressure(consumer, 2.0) is not None
        assert consumer.stopped == set()
    finally:
        await pipeline._cancel_workers()
