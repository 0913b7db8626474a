"""The parking topic's writer: each parking partition's writes go out as one batch at a time, in order, and a batch
that fails is written again before anything parked after it (docs/parking.md, Ordering)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from gateway.backoff import FullJitterBackoff
from gateway.dlq import TOO_LARGE
from gateway.offsets import PartitionOffsets

log = structlog.get_logger("gateway.parking")

BATCH_BYTES = 512 * 1024
"""Bytes of parked records per batch: one batch per parking partition is on its way at a time."""

RECORD_OVERHEAD = 40
"""Bytes a record takes in a batch beyond its key, value and headers (length, offset and timestamp varints: at most),
and HEADER_OVERHEAD per header (two length varints)."""
HEADER_OVERHEAD = 10


class Batch(Protocol):
    """What the writer needs of a record batch (aiokafka's BatchBuilder)."""

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None, headers: Any) -> Any: ...

    def close(self) -> None: ...


class Producer(Protocol):
    """What the writer needs of a producer (aiokafka's AIOKafkaProducer)."""

    def create_batch(self) -> Batch: ...

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[Any]: ...


@dataclass(slots=True)
class Write:
    """One message to park: its source tracker and offset (settled once written), its brand, the source message, and
    the headers it is parked with."""

    offsets: PartitionOffsets
    offset: int
    tenant: str
    message: Any
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes the record takes in a batch (at most)."""
        return (
            RECORD_OVERHEAD
            + len(self.message.key or b"")
            + len(self.message.value or b"")
            + sum(HEADER_OVERHEAD + len(key) + len(value) for key, value in self.headers)
        )


Written = Callable[[Write, int, int], None]
"""(write, parking partition, its offset there): the write is acknowledged."""
Refused = Callable[[Write, BaseException], None]
"""(write, error): the parking topic refuses it as too large, on every try."""


class ParkingWriter:
    """Writes parked messages to `topic`, partition by partition. A partition's writes are sent as one batch at a
    time (as many of the oldest as fit in BATCH_BYTES), and the next batch starts only once the previous one is
    acknowledged: a batch that fails (even after the producer's own retries, a long outage) is sent again before any
    later write, so a player's parked events never overtake one another. A record larger than `max_record_bytes`, or
    one the broker refuses as too large on its own, is `refused`."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        partitions: int,
        max_record_bytes: int,
        written: Written,
        refused: Refused,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._max_record_bytes = max_record_bytes
        self._batch_bytes = min(BATCH_BYTES, max_record_bytes)
        self._written = written
        self._refused = refused
        self._queues: list[deque[Write]] = [deque() for _ in range(max(1, partitions))]
        self._ready = [asyncio.Event() for _ in self._queues]
        self._alone = [0] * len(self._queues)  # writes to send one per batch (a batch was refused as too large)
        self._backoff = FullJitterBackoff(initial=0.1, maximum=5.0)

    def partition_of(self, source_partition: int) -> int:
        """The parking partition of a source partition: everything one source partition parks stays in order."""
        return source_partition % len(self._queues)

    def write(self, partition: int, write: Write) -> None:
        """Queue `write` for parking `partition`, behind every earlier write of it."""
        if write.size > self._max_record_bytes:
            error = MessageSizeTooLargeError(f"{write.size} bytes, over the {self._max_record_bytes} allowed")
            self._refused(write, error)
            return
        self._queues[partition].append(write)
        self._ready[partition].set()

    @property
    def queued(self) -> int:
        """Writes not yet acknowledged."""
        return sum(len(queue) for queue in self._queues)

    async def run(self) -> None:
        """Write every partition's queue until cancelled."""
        async with asyncio.TaskGroup() as group:
            for partition in range(len(self._queues)):
                group.create_task(self._run_partition(partition), name=f"parking-writer:{self.topic}:{partition}")

    async def _run_partition(self, partition: int) -> None:
        queue, ready = self._queues[partition], self._ready[partition]
        failures = 0
        while True:
            if not queue:
                ready.clear()
                await ready.wait()
                continue
            writes = self._next_batch(partition)
            try:
                base, sent = await self._send(partition, writes)
            except TOO_LARGE as error:
                if len(writes) == 1:
                    queue.popleft()
                    self._alone[partition] = max(0, self._alone[partition] - 1)
                    self._refused(writes[0], error)
                else:
                    self._alone[partition] = len(writes)  # find the one refused: one write per batch
                continue
            except KafkaError as error:
                delay = self._backoff.delay(failures)
                failures += 1
                log.warning(
                    "parking write failed; writing it again before anything parked after it",
                    topic=self.topic,
                    partition=partition,
                    records=len(writes),
                    error=type(error).__name__,
                    delay_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for index in range(sent):
                self._written(queue.popleft(), partition, base + index)
            self._alone[partition] = max(0, self._alone[partition] - sent)

    def _next_batch(self, partition: int) -> list[Write]:
        """The oldest writes of `partition` that fit one batch (at least one; one alone after a refusal)."""
        queue = self._queues[partition]
        if self._alone[partition]:
            return [queue[0]]
        writes: list[Write] = []
        size = 0
        for write in queue:
            if writes and size + write.size > self._batch_bytes:
                break
            writes.append(write)
            size += write.size
        return writes

    async def _send(self, partition: int, writes: list[Write]) -> tuple[int, int]:
        """Send the first of `writes` that the batch takes (all, unless the estimate of their size fell short) as one
        batch; once acknowledged, the offset of the first and how many were sent."""
        batch = self._producer.create_batch()
        sent = 0
        for write in writes:
            message = write.message
            if batch.append(timestamp=None, key=message.key, value=message.value, headers=write.headers) is None:
                break  # the batch is full: the rest goes in the next one
            sent += 1
        batch.close()
        if not sent:  # a batch always takes its first record, however large: never here
            raise MessageSizeTooLargeError("the batch took no record")
        future = await self._producer.send_batch(batch, self.topic, partition=partition)
        metadata = await future
        offset: int = metadata.offset
        return offset, sent
