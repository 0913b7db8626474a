"""The parking writer: a partition's writes go out one batch at a time, and a failed batch is written again before
anything parked after it; a write the topic refuses as too large is refused alone, the others go on in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from gateway.offsets import PartitionOffsets
from gateway.parking_writer import Batch, ParkingWriter, Write


class FakeBatch:
    """Collects the values appended."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        self.values.append(value or b"")
        return object()

    def close(self) -> None:
        return None


class FakeProducer:
    """Each batch sent waits until the test answers it: written (appended to the log) or failed with an error."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []  # every batch sent, in order, failed ones included
        self.log: dict[int, list[bytes]] = {}  # what each partition holds
        self.waiting: list[tuple[int, FakeBatch, asyncio.Future[Any]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert isinstance(batch, FakeBatch)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(list(batch.values))
        self.waiting.append((partition, batch, future))
        return future

    def answer(self, error: BaseException | None = None) -> None:
        """Answer the oldest batch waiting."""
        partition, batch, future = self.waiting.pop(0)
        if error is not None:
            future.set_exception(error)
            return
        log = self.log.setdefault(partition, [])
        future.set_result(SimpleNamespace(offset=len(log)))
        log.extend(batch.values)


def _write(tracker: PartitionOffsets, offset: int, size: int = 10) -> Write:
    tracker.track(offset, 1)
    message = SimpleNamespace(key=b"p1", value=f"e{offset}".encode().ljust(size, b"."), partition=0)
    return Write(tracker, offset, "casino-b", message, [("gateway-parked-tenant", b"casino-b")])


async def _until(condition: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - the fakes signal nothing: a test polls them
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), 5)


async def _running(writer: ParkingWriter, test: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(writer.run())
    try:
        await test()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failed_batch_is_written_again_before_anything_parked_after_it() -> None:
    """The first batch fails after the producer's own retries (a long outage) while later writes are queued: it is
    sent again first, and the later ones only after it is acknowledged, so the partition holds them in order."""
    producer = FakeProducer()
    tracker = PartitionOffsets()
    written: list[tuple[int, int, int]] = []

    def write(write: Write, partition: int, offset: int) -> None:
        written.append((write.offset, partition, offset))
        write.offsets.settle(write.offset)

    writer = ParkingWriter(producer, "parked", 1, 1 << 20, write, _never)

    async def test() -> None:
        for offset in range(3):
            writer.write(0, _write(tracker, offset))
        await _until(lambda: len(producer.waiting) == 1)
        for offset in range(3, 6):
            writer.write(0, _write(tracker, offset))  # parked while the first batch is on its way
        await asyncio.sleep(0.01)
        assert len(producer.waiting) == 1  # one batch at a time per partition: the later ones wait
        producer.answer(KafkaTimeoutError())
        await _until(lambda: len(producer.waiting) == 1)
        producer.answer()  # the failed writes again, the later ones behind them in the same batch
        await _until(lambda: len(written) == 6)

    await _running(writer, test)
    assert [[value[:2] for value in batch] for batch in producer.sent] == [
        [b"e0", b"e1", b"e2"],
        [b"e0", b"e1", b"e2", b"e3", b"e4", b"e5"],
    ]
    assert [value[:2] for value in producer.log[0]] == [b"e0", b"e1", b"e2", b"e3", b"e4", b"e5"]
    assert written == [(offset, 0, offset) for offset in range(6)]
    assert len(tracker) == 0 and writer.queued == 0


async def test_each_partition_waits_only_for_its_own_batch() -> None:
    """A batch of partition 0 stuck on its way does not hold partition 1's writes."""
    producer = FakeProducer()
    trackers = [PartitionOffsets(), PartitionOffsets()]
    writer = ParkingWriter(producer, "parked", 2, 1 << 20, _settle, _never)

    async def test() -> None:
        writer.write(0, _write(trackers[0], 0))
        await _until(lambda: len(producer.waiting) == 1)
        writer.write(1, _write(trackers[1], 0))
        await _until(lambda: len(producer.waiting) == 2)
        producer.waiting.append(producer.waiting.pop(0))  # answer partition 1's first
        producer.answer()
        await _until(lambda: len(trackers[1]) == 0)
        assert len(trackers[0]) == 1

    await _running(writer, test)


async def test_a_write_refused_as_too_large_is_found_alone_and_the_others_keep_their_order() -> None:
    """The broker refuses a batch as too large: its writes go one per batch until the refused one is found; that one
    is refused (dead-lettered by parking), the others are written in order."""
    producer = FakeProducer()
    tracker = PartitionOffsets()
    refused: list[int] = []
    writer = ParkingWriter(producer, "parked", 1, 1 << 20, _settle, _refuse(refused))

    async def test() -> None:
        for offset in range(3):
            writer.write(0, _write(tracker, offset))
        await _until(lambda: len(producer.waiting) == 1)
        producer.answer(MessageSizeTooLargeError())  # e0..e2 together
        for error in (None, MessageSizeTooLargeError(), None):  # e0, e1 (refused), e2
            await _until(lambda: len(producer.waiting) == 1)
            producer.answer(error)
        await _until(lambda: writer.queued == 0)

    await _running(writer, test)
    assert [len(batch) for batch in producer.sent] == [3, 1, 1, 1]
    assert [value[:2] for value in producer.log[0]] == [b"e0", b"e2"]
    assert refused == [1]


def test_a_record_over_the_topics_limit_is_refused_without_a_try() -> None:
    producer = FakeProducer()
    refused: list[int] = []
    writer = ParkingWriter(producer, "parked", 1, 1000, lambda w, p, o: None, _refuse(refused))
    writer.write(0, _write(PartitionOffsets(), 0, size=2000))
    assert refused == [0]
    assert writer.queued == 0


def _settle(write: Write, partition: int, offset: int) -> None:
    write.offsets.settle(write.offset)


def _never(write: Write, error: BaseException) -> None:
    raise AssertionError(f"refused {write.offset}: {error!r}")


def _refuse(refused: list[int]) -> Callable[[Write, BaseException], None]:
    def refuse(write: Write, error: BaseException) -> None:
        refused.append(write.offset)
        write.offsets.settle(write.offset)

    return refuse
