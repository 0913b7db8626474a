"""One brand's parking reader: reads the parking topic in its own group and hands that brand's parked events back to
delivery, in order, while the brand can take them; commits only past settled ones."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gateway.commits import Committer
from gateway.config import KafkaConfig
from gateway.delivery import Tenant
from gateway.kafka_clients import (
    KAFKA_CALL_TIMEOUT,
    SHUTDOWN_CALL_TIMEOUT,
    destination_consumer,
    poll,
    stop_within,
    within,
)
from gateway.load import HOLD_CHECK_MS, Bound, Hold, Load
from gateway.offsets import PartitionOffsets
from gateway.parked_records import OrderAfter, ParkedMessage, order_after, tenant_of, unparked
from gateway.parking_order import OrderGate
from gateway.waits import wait_event

log = structlog.get_logger("gateway.parking")

MAX_POLL_RECORDS = 1000
COMMIT_PERIOD = 0.2

Ingest = Callable[[PartitionOffsets, int, ParkedMessage], None]
"""Takes one parked message of the reader's brand on to delivery: (its tracker, its parking-topic offset, message)."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, reader: ParkingReader) -> None:
        self._reader = reader

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._reader.revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._reader.assigned(assigned)


class ParkingReader:
    """Reads the parking topic for one brand (group `<destination group>.parked.<brand>`), skipping other brands'
    records, and never takes more than the brand's share of the bounds; it reads nothing while the brand is halted."""

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        group: str,
        tenant: Tenant,
        bound: Bound,
        load: Load,
        ingest: Ingest,
        purge: Callable[[], None],
        wait: Callable[[], bool],
        gate: OrderGate,
    ) -> None:
        """`purge` drops queued records of closed trackers from the lanes (after a revocation); while `wait` is true
        nothing is read (older source records are still on their way); `gate` holds back a record parked behind
        older ones another process still holds (gateway/parking_order.py)."""
        self.tenant = tenant
        self.group = group
        self._kafka = kafka
        self._topic = topic
        self._bound = bound
        self._load = load
        self._ingest = ingest
        self._purge = purge
        self._wait = wait
        self._gate = gate
        # Parking partitions whose next record waits on the gate: the records read from each, in order (paused).
        self._waiting: dict[TopicPartition, deque[Any]] = {}
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._committer: Committer | None = None
        self._hold = Hold()  # at the brand's bound: hold, then pause (gateway/load.py)
        self.read = 0  # this brand's parked events handed on
        self.joined = False

    @property
    def pending(self) -> int:
        """Parked events handed on and not yet settled."""
        return sum(len(offsets) for offsets in self._partitions.values())

    @property
    def waiting(self) -> int:
        """Records read and held back by the order gate (not handed on, so not pending)."""
        return sum(len(records) for records in self._waiting.values())

    def assigned(self, assigned: list[TopicPartition]) -> None:
        """Joined the group; a tracker still held for a newly assigned partition is stale: start it afresh."""
        self.joined = True
        for tp in assigned:
            self._waiting.pop(tp, None)
            stale = self._partitions.pop(tp, None)
            if stale is not None:
                stale.close()

    async def revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what settled, then forget the partitions: their unsettled records go to the next owner."""
        await self._commit()
        for tp in revoked:
            self._waiting.pop(tp, None)  # never tracked: the next owner reads them again
            tracker = self._partitions.pop(tp, None)
            if tracker is not None:
                tracker.close()
        self._purge()

    async def committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        """The group's committed offsets (from the coordinator: any replica's commits), or None if unanswered."""
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            return {tp: (await within(KAFKA_CALL_TIMEOUT, consumer.committed(tp))) or 0 for tp in partitions}
        except (KafkaError, AssertionError):
            return None

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set, then commit what settled and leave the group."""
        consumer = destination_consumer(self._kafka, self.group, f"parked.{self.tenant.name}", "earliest")
        consumer.subscribe(topics=[self._topic], listener=_Rebalance(self))
        try:
            await consumer.start()
        except KafkaError:
            await stop_within(f"parking-reader:{self.group}", consumer.stop)
            raise
        self._consumer = consumer
        self._committer = Committer(consumer, 0)  # plain watermarks: a restart re-reads above one (duplicates)
        log.info("parking reader started", group=self.group, tenant=self.tenant.name)
        try:
            await self._read(consumer, stop)
        finally:
            with contextlib.suppress(KafkaError):
                await self._commit(SHUTDOWN_CALL_TIMEOUT)
            self._consumer = None
            await stop_within(f"parking-reader:{self.group}", consumer.stop)
            log.info("parking reader stopped", group=self.group, tenant=self.tenant.name, read=self.read)

    async def _read(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        next_commit = time.monotonic() + COMMIT_PERIOD
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_commit:
                await self._commit()
                next_commit = now + COMMIT_PERIOD
            if self._waiting:
                await self._release(consumer)
            room = self._room(consumer, now)
            if room is None:  # holding at the bound: no poll, nothing prefetched dropped
                await wait_event(stop, HOLD_CHECK_MS / 1000)
                continue
            try:
                batches = await poll(consumer, timeout_ms=100, max_records=room)
            except KafkaError as error:
                log.warning("parking reader cannot read; retrying", group=self.group, error=type(error).__name__)
                await wait_event(stop, 1.0)
                continue
            for tp, records in batches.items():
                self._take(consumer, tp, records)

    def _take(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Any]) -> None:
        """Hand records on in order until one must wait on the gate: it and the rest wait, the partition paused."""
        waiting = self._waiting.get(tp)
        if waiting is not None:
            waiting.extend(records)
            return
        for index, record in enumerate(records):
            if self._blocked(record) is not None:
                self._waiting[tp] = deque(records[index:])
                consumer.pause(tp)
                return
            self._hand_on(tp, record)

    async def _release(self, consumer: AIOKafkaConsumer) -> None:
        """Hand on what waited on the gate and may go now; resume a partition whose wait is over."""
        for tp in list(self._waiting):
            waiting = self._waiting.get(tp)
            while waiting:
                wait = self._blocked(waiting[0])
                if wait is not None and not await self._gate.refresh(wait):
                    break
                if self._waiting.get(tp) is not waiting:  # revoked (or assigned afresh) meanwhile
                    break
                self._hand_on(tp, waiting.popleft())
            if not waiting and self._waiting.get(tp) is waiting:
                del self._waiting[tp]
                if not self._hold.paused:
                    consumer.resume(tp)

    def _blocked(self, record: Any) -> OrderAfter | None:
        """What `record` waits for, if it is this brand's and the gate is not open for it yet."""
        if tenant_of(record) != self.tenant.name:
            return None
        wait = order_after(record)
        return None if wait is None or self._gate.open(wait) else wait

    def _hand_on(self, tp: TopicPartition, record: Any) -> None:
        tracker = self._partitions.get(tp)
        if tracker is None:
            tracker = self._partitions[tp] = PartitionOffsets()
        if tenant_of(record) != self.tenant.name:
            tracker.track(record.offset, 0)  # another brand's: its own reader delivers it
            return
        self.read += 1
        self._ingest(tracker, record.offset, unparked(record))

    def _room(self, consumer: AIOKafkaConsumer, now: float) -> int | None:
        """Hold (gateway/load.py, HOLD), then pause, while the brand is halted or at its bound; the room for the next
        poll otherwise, or None while holding (no poll)."""
        # Halted, it takes nothing more while it holds records (its prober re-sends those); holding none, it takes one
        # record at a time, so that a probe goes out and tells when the brand is accepted again.
        halted = self.tenant.halted
        full = (halted and self._load.events > 0) or self._bound.check(self._load, now) or self._wait()
        if self._hold.holds(consumer, full, now, keep_paused=self._waiting):
            return None
        if full or halted:
            return 1
        average = max(64, self._load.bytes // self._load.events) if self._load.events else 1024
        return max(1, min(MAX_POLL_RECORDS, self._bound.room(self._load, average)))

    async def _commit(self, limit: float = KAFKA_CALL_TIMEOUT) -> None:
        committer = self._committer
        if committer is None:
            return
        if await committer.commit(self._partitions, None, limit) is None:
            failure: Any = committer.last_failure
            log.warning("parking reader commit failed; will retry", group=self.group, error=type(failure).__name__)
