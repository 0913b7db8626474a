"""After a rebalance, a process parks every brand with parked events its reader group has not read, and waits while
it cannot tell: the process that parked them may have left the group (gateway/parking.py, `restore`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from gateway import parking as parking_module
from gateway.config import KafkaConfig
from gateway.load import HOLD
from gateway.metrics import Metrics
from gateway.offsets import PartitionOffsets
from gateway.parking import Parking
from gateway.pipeline import Pipeline
from tests.unit.helpers import make_parking, two_brand_config

BRANDS = ("casino-a", "casino-b")
PARKED = "gw-events.unibo.parked"


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
    parking = make_parking(two_brand_config(), _Source())
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
    """Nothing is consumed before the start; the first assignment after it reads them."""
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


@pytest.fixture
async def pipeline() -> AsyncIterator[Pipeline]:
    config = two_brand_config()
    built = Pipeline(config.destinations[0], config.gateway.kafka, None, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    assert built._parking is not None
    yield built
    await built._cancel_workers()


async def test_the_pipeline_reads_nothing_while_the_positions_are_unknown(pipeline: Pipeline) -> None:
    """Delivering a taken-over partition's records directly before knowing whether older events of the same players
    are parked could let them overtake those."""
    parking = pipeline._parking
    assert parking is not None
    consumer = _Consumer()
    assert pipeline._apply_backpressure(consumer, 1.0) is not None  # reads
    parking.unchecked = True
    assert pipeline._apply_backpressure(consumer, 2.0) is None  # holds (no poll), then pauses
    pipeline._apply_backpressure(consumer, 2.0 + HOLD)
    assert consumer.paused
    parking.unchecked = False
    assert pipeline._apply_backpressure(consumer, 3.0 + HOLD) is not None and not consumer.paused


async def test_a_partition_assigned_while_the_positions_cannot_be_read_resumes_only_once_they_are(
    pipeline: Pipeline,
) -> None:
    """Resumed at the end of its assignment, it would be read before the pipeline's next look at the bounds."""
    parking = pipeline._parking
    assert parking is not None
    consumer = _Consumer()
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
