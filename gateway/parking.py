"""Parking (docs/parking.md): a blocked brand's further events go to a per-destination Kafka topic instead of holding
the destination's bounds, and come back through that brand's parking reader, in order, once it can take them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gateway.batcher import Item
from gateway.config import KafkaConfig
from gateway.delivery import Tenant
from gateway.destination import Destination
from gateway.kafka_clients import KAFKA_CALL_TIMEOUT, start_with_retry, stop_within, within
from gateway.kafka_security import client_security_kwargs
from gateway.load import Bound, Load
from gateway.logs import destination_logger
from gateway.metrics import DestinationMetrics
from gateway.offsets import PartitionOffsets
from gateway.parked_records import ParkedMessage, parked_headers
from gateway.parking_order import OrderGate, SourcePositions
from gateway.parking_reader import ParkingReader
from gateway.parking_writer import BATCH_BYTES, ParkingWriter, Write
from gateway.waits import wait_event

log = structlog.get_logger("gateway.parking")

SUPERVISE_PERIOD = 0.25
HOLD_LIMIT = 2.0
"""Seconds consumption may pause so that a brand's last parked events are delivered and it flips back to direct
delivery (under steady traffic its parking writes would otherwise never stop long enough); then it tries later."""
HOLD_RETRY = 10.0
RESTORE_RETRY = 2.0
"""Seconds between attempts to read the reader groups' positions after a rebalance, while they cannot be read."""
ORDER_PATIENCE = 60.0
"""The least time a parking reader waits on the commit of a source partition that another process holds older
records of (gateway/parking_order.py), while that commit does not move."""

DeadLetter = Callable[[PartitionOffsets, int, Any, str, str], None]
"""(tracker, offset, message, reason, detail): dead-letter a message that could not be parked."""
IngestParked = Callable[[PartitionOffsets, int, ParkedMessage], None]
Held = Callable[[str], Iterable[Item]]
"""A brand's records not yet settled in the lanes or the per-player deliveries."""


@dataclass(slots=True)
class TenantParking:
    """One brand's parking state at one destination."""

    name: str
    parking: bool = False
    writes: int = 0  # parking writes not yet acknowledged
    issued: int = 0  # parking writes ever started: a flip checks that none started while it looked
    targets: dict[TopicPartition, int] = field(default_factory=dict)  # the reader group must commit past these
    backlog: int = 0
    previous: dict[TopicPartition, int] | None = None  # the targets at the previous look
    hold_until: float = 0.0
    hold_again_at: float = 0.0
    # Per source tracker, the offsets of this brand's records the lanes held when it was parked (ascending): a record
    # parked behind one of them still unsettled carries the highest such offset (AFTER_HEADER).
    held: dict[PartitionOffsets, list[int]] = field(default_factory=dict)
    reader: ParkingReader | None = None
    reader_task: asyncio.Task[None] | None = None
    reader_stop: asyncio.Event = field(default_factory=asyncio.Event)


class Parking:
    """The parking topic of one destination: the writer, each brand's state and reader, and the decisions."""

    def __init__(
        self,
        destination: Destination,
        kafka: KafkaConfig,
        tenants: Mapping[str, Tenant],
        bounds: Mapping[str, Bound],
        loads: Mapping[str, Load],
        metrics: DestinationMetrics,
        ingest: IngestParked,
        dead_letter: DeadLetter,
        purge: Callable[[], None],
        replaying: Callable[[], bool],
        held: Held,
        source: SourcePositions,
    ) -> None:
        """`replaying` is true while source records read again after a restart or rebalance (older than anything
        parked before it) are unsettled: readers deliver nothing meanwhile. `held` lists a brand's records in the
        lanes; `source` shows readers this process's tracking of the source partitions and the group's commits."""
        self.topic = destination.parking_topic(kafka.group_prefix)
        self._group = f"{destination.group_id(kafka.group_prefix)}.parked"
        self._destination = destination.name
        self._log = destination_logger("gateway.parking", destination.name)
        self._kafka = kafka
        self._after = destination.config.parking.after
        # A holder elsewhere delivers its held records within a probe interval of its brand coming back (replicas may
        # probe less often than this one): a reader waits on it while its partition's commit moves at least this often.
        patience = destination.config.parking.order_patience
        if patience is None:
            patience = max(ORDER_PATIENCE, 2 * destination.config.retry.halt_probe + 10.0)
        self._order_patience = patience
        self._tenants = tenants
        self._bounds = bounds
        self._loads = loads
        self._metrics = metrics
        self._ingest = ingest
        self._dead_letter = dead_letter
        self._purge = purge
        self._replaying = replaying
        self._held = held
        self._source = source
        self.parking: set[str] = set()  # read on the hot path: brands whose events are parked
        self.holding: set[str] = set()  # brands about to flip back: consumption pauses briefly (HOLD_LIMIT)
        self.unchecked = False  # the reader groups' positions could not be read after a rebalance: consumption waits
        self._states = {name: TenantParking(name) for name in tenants}
        self._producer: AIOKafkaProducer | None = None
        self._writer: ParkingWriter | None = None
        for name in tenants:
            metrics.parking(name, False, 0)
            metrics.parked(name)
            metrics.unparked(name)
            metrics.parked_order_timeouts(name)

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, stopping: asyncio.Event) -> bool:
        """Start the producer and create the topic if missing; False if asked to stop first. Brands with parked
        events not yet delivered are put in parking mode at each assignment (`restore`), the first one included."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self._kafka.client_id}.{self._destination}.parking",
            acks="all",
            linger_ms=5,
            max_request_size=self._kafka.dlq_max_message_bytes,
            max_batch_size=BATCH_BYTES + 64 * 1024,  # the writer's batches, with room for its size estimates
            **client_security_kwargs(self._kafka.security),
        )
        if not await start_with_retry(f"parking-producer:{self._destination}", producer.start, stopping):
            await producer.stop()
            return False
        self._producer = producer
        while not stopping.is_set():
            try:
                await self._prepare()
                return True
            except KafkaError as error:
                self._log.warning(
                    "cannot prepare the parking topic; retrying", topic=self.topic, error=type(error).__name__
                )
                await wait_event(stopping, 2.0)
        return False

    async def _prepare(self) -> None:
        await ensure_topic(self._kafka, self.topic, self._kafka.topics)
        producer = self._producer
        assert producer is not None
        partitions = len(await within(KAFKA_CALL_TIMEOUT, producer.partitions_for(self.topic)))
        self._writer = ParkingWriter(
            producer, self.topic, partitions, self._kafka.dlq_max_message_bytes, self._written, self._refused
        )

    async def restore(self) -> None:
        """When the process is given source partitions (after its start, or in a rebalance): park every brand whose
        reader group has not read to the end of the parking topic, before any record of those partitions is
        delivered. The events may be this process's own from before a restart, or those of a process that left the
        group (a scale-down, a crash), whose players may be on the partitions that came here. A brand that never
        parked, on a topic holding other brands' events, is parked until its reader has read past them. If the
        reader groups' positions cannot be read, consumption waits (`unchecked`) and the supervisor asks again."""
        if self._writer is None:  # not started: nothing is consumed before the start
            return
        try:
            behind = await uncommitted(self._kafka, self.topic, [self._reader_group(name) for name in self._states])
        except (KafkaError, OSError) as error:
            if not self.unchecked:
                self._log.warning(
                    "cannot read the parking readers' positions after an assignment; consumption waits until it can",
                    topic=self.topic,
                    error=type(error).__name__,
                )
            self.unchecked = True
            return
        self.unchecked = False
        for name, state in self._states.items():
            ends = behind[self._reader_group(name)]
            if ends:
                for tp, end in ends.items():
                    state.targets[tp] = max(state.targets.get(tp, 0), end)
                self._begin(state, "parked events not yet delivered (before a restart, or by a process that left)")

    @property
    def pending(self) -> int:
        """Parking writes not yet acknowledged, and parked events read back and not yet settled."""
        states = self._states.values()
        return sum(s.writes for s in states) + sum(s.reader.pending for s in states if s.reader is not None)

    async def stop(self) -> None:
        """Stop every reader (each commits what settled) and the producer."""
        for state in self._states.values():
            state.reader_stop.set()
        tasks = [s.reader_task for s in self._states.values() if s.reader_task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._producer is not None:
            await stop_within(f"parking-producer:{self._destination}", self._producer.stop)

    # ---- decisions (the consume loop) --------------------------------------------------------------------------

    def consider(self, now: float) -> None:
        """Park a brand that is blocked, halted or at its bound for `parking.after`, while another brand is not:
        when every brand is blocked, pausing consumption is right and nothing is parked."""
        blocked = {name for name in self._tenants if name not in self.parking and self._blocked(name, now)}
        if not blocked:
            return
        for name in blocked:
            others_free = any(
                other != name and other not in self.parking and other not in blocked for other in self._tenants
            )
            if others_free:
                tenant = self._tenants[name]
                self._begin(self._states[name], "halted" if tenant.halted else "at its bound for parking.after")

    def _blocked(self, name: str, now: float) -> bool:
        if self._tenants[name].halted:
            return True
        bound = self._bounds[name]
        return bound.check(self._loads[name], now) and now - bound.full_since >= self._after

    def _begin(self, state: TenantParking, why: str) -> None:
        if state.parking:
            return
        state.parking = True
        state.previous = None
        state.hold_again_at = 0.0
        state.held = held_offsets(self._held(state.name))
        self.parking.add(state.name)
        self._metrics.parking(state.name, True, state.backlog)
        self._log.warning(
            "brand parked: its further events go to the parking topic until it can take them again",
            destination=self._destination,
            brand=state.name,
            topic=self.topic,
            reason=why,
        )

    # ---- the writer --------------------------------------------------------------------------------------------

    def park(self, offsets: PartitionOffsets, offset: int, message: Any, tenant: str) -> None:
        """Queue `message` for the parking topic; its source offset settles once the write is acknowledged."""
        writer = self._writer
        assert writer is not None  # started before anything is consumed
        state = self._states[tenant]
        state.writes += 1
        state.issued += 1
        headers = parked_headers(message, self._destination, tenant, held_after(state.held, offsets))
        writer.write(writer.partition_of(message.partition), Write(offsets, offset, tenant, message, headers))

    async def write_forever(self) -> None:
        """Write what is parked: each parking partition in order, one batch at a time (gateway/parking_writer.py)."""
        writer = self._writer
        assert writer is not None
        await writer.run()

    def _written(self, write: Write, partition: int, offset: int) -> None:
        state = self._states[write.tenant]
        state.writes -= 1
        tp = TopicPartition(self.topic, partition)
        state.targets[tp] = max(state.targets.get(tp, 0), offset + 1)
        state.backlog += 1
        self._metrics.parked(write.tenant).inc()
        write.offsets.settle(write.offset)

    def _refused(self, write: Write, error: BaseException) -> None:
        self._states[write.tenant].writes -= 1
        detail = f"the parking topic {self.topic} refused the event as too large ({type(error).__name__})"
        self._dead_letter(write.offsets, write.offset, write.message, "parking_refused", detail)

    # ---- readers and the way back ------------------------------------------------------------------------------

    def _reader_group(self, tenant: str) -> str:
        return f"{self._group}.{tenant}"

    async def supervise_forever(self) -> None:
        """Run a reader for each parked brand; flip a brand back to direct delivery once the reader group committed
        past everything parked for it and no parking write of it is outstanding; stop idle readers."""
        check_at = 0.0
        while True:
            await asyncio.sleep(SUPERVISE_PERIOD)
            now = asyncio.get_running_loop().time()
            if self.unchecked and now >= check_at:
                check_at = now + RESTORE_RETRY
                await self.restore()
            for state in self._states.values():
                await self._supervise(state)

    async def _supervise(self, state: TenantParking) -> None:
        if state.parking and state.reader_task is None:
            self._start_reader(state)
        reader = state.reader
        if reader is not None:
            state.backlog = max(0, state.backlog - reader.read)
            reader.read = 0
        if state.parking and reader is not None and reader.joined:
            await self._look(state, reader)
        # A reader holding records back for order keeps reading until they went: they may be the only copy anyone
        # reads before the next start (another process parked them, and it may be gone).
        idle = reader is not None and reader.pending == 0 and reader.waiting == 0
        if not state.parking and idle and state.reader_task is not None:
            state.reader_stop.set()
            task = state.reader_task
            await asyncio.gather(task, return_exceptions=True)
            state.reader, state.reader_task = None, None
        if state.parking:
            self._metrics.parking(state.name, True, state.backlog)

    async def _look(self, state: TenantParking, reader: ParkingReader) -> None:
        """Flip the brand back once its reader group committed past everything parked for it with no parking write
        outstanding; hold consumption for a moment when the reader has caught up with what was parked a look ago."""
        issued, writes, targets, previous = state.issued, state.writes, dict(state.targets), state.previous
        committed = await reader.committed(sorted({*targets, *(previous or {})}, key=lambda tp: tp.partition))
        now = asyncio.get_running_loop().time()
        if committed is None:
            return
        quiet = not writes and not state.writes and state.issued == issued
        if quiet and all(committed[tp] >= target for tp, target in targets.items()):
            self._end(state)
            return
        state.previous = targets
        name = state.name
        if name in self.holding:
            if now >= state.hold_until:  # not caught up in time (blocked again?): let the others go on
                self.holding.discard(name)
                state.hold_again_at = now + HOLD_RETRY
            return
        caught_up = previous is not None and all(committed[tp] >= target for tp, target in previous.items())
        if caught_up and not self._tenants[name].halted and now >= state.hold_again_at:
            self.holding.add(name)
            state.hold_until = now + HOLD_LIMIT

    def _start_reader(self, state: TenantParking) -> None:
        name = state.name

        def ingest(offsets: PartitionOffsets, offset: int, message: ParkedMessage) -> None:
            self._metrics.unparked(name).inc()
            self._ingest(offsets, offset, message)

        state.reader_stop = asyncio.Event()
        state.reader = ParkingReader(
            self._kafka,
            self.topic,
            self._reader_group(name),
            self._tenants[name],
            self._bounds[name],
            self._loads[name],
            ingest,
            self._purge,
            self._replaying,
            OrderGate(self._source, self._order_patience, self._metrics.parked_order_timeouts(name).inc, self._log),
        )
        state.reader_task = asyncio.create_task(state.reader.run(state.reader_stop), name=f"parking-reader:{name}")

    def _end(self, state: TenantParking) -> None:
        state.parking = False
        state.targets.clear()
        state.previous = None
        state.backlog = 0
        self.parking.discard(state.name)
        self.holding.discard(state.name)
        self._metrics.parking(state.name, False, 0)
        self._log.info("brand unparked: its parked events are delivered, it delivers directly again", brand=state.name)

    def reader_failure(self) -> BaseException | None:
        """A reader that ended with an error (a bug or a Kafka failure at start): the pipeline fails on it."""
        for state in self._states.values():
            task = state.reader_task
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None


def held_offsets(held: Iterable[Item]) -> dict[PartitionOffsets, list[int]]:
    """Per source tracker, the offsets of the items in `held` still unsettled, ascending."""
    by_tracker: dict[PartitionOffsets, set[int]] = {}
    for item in held:
        if item.offsets.unsettled(item.offset):
            by_tracker.setdefault(item.offsets, set()).add(item.offset)
    return {tracker: sorted(offsets) for tracker, offsets in by_tracker.items()}


def held_after(held: dict[PartitionOffsets, list[int]], tracker: PartitionOffsets) -> tuple[int, str] | None:
    """The highest offset of `tracker` still held unsettled from when the brand was parked, if any, and its token."""
    offsets = held.get(tracker)
    if offsets is None:
        return None
    while offsets and not tracker.unsettled(offsets[-1]):
        offsets.pop()
    if not offsets:
        del held[tracker]
        return None
    return offsets[-1], tracker.token


async def ensure_topic(kafka: KafkaConfig, topic: str, sources: list[str]) -> bool:
    """Create `topic` if it is missing, with as many partitions as the largest source topic and up to three replicas
    (as many as there are brokers); True if it existed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.servers, **client_security_kwargs(kafka.security))
    await within(KAFKA_CALL_TIMEOUT, consumer.start())
    try:
        topics = await within(KAFKA_CALL_TIMEOUT, consumer.topics())
        if topic in topics:
            return True
        partitions = max((len(consumer.partitions_for_topic(source) or ()) for source in sources), default=1)
        replicas = min(3, max(1, len(consumer._client.cluster.brokers())))
    finally:
        await stop_within("parking-check", consumer.stop)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.servers, **client_security_kwargs(kafka.security))
    await within(KAFKA_CALL_TIMEOUT, admin.start())
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await within(KAFKA_CALL_TIMEOUT, admin.create_topics([NewTopic(topic, max(1, partitions), replicas)]))
        log.info("parking topic created", topic=topic, partitions=max(1, partitions), replication_factor=replicas)
    finally:
        await stop_within("parking-check", admin.close)
    return False


async def uncommitted(kafka: KafkaConfig, topic: str, groups: list[str]) -> dict[str, dict[TopicPartition, int]]:
    """Per group, each partition of `topic` where it has not committed up to the end: the end offset (its target)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.servers, **client_security_kwargs(kafka.security))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.servers, **client_security_kwargs(kafka.security))
    await within(KAFKA_CALL_TIMEOUT, consumer.start())
    try:
        await within(KAFKA_CALL_TIMEOUT, admin.start())
        await within(KAFKA_CALL_TIMEOUT, consumer.topics())
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return {group: {} for group in groups}
        ends = await within(KAFKA_CALL_TIMEOUT, consumer.end_offsets(partitions))
        starts = await within(KAFKA_CALL_TIMEOUT, consumer.beginning_offsets(partitions))
        behind: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await within(KAFKA_CALL_TIMEOUT, admin.list_consumer_group_offsets(group, partitions=partitions))
            behind[group] = {}
            for tp in partitions:
                found = offsets.get(tp)
                position = found.offset if found is not None and found.offset >= 0 else starts[tp]
                if position < ends[tp]:
                    behind[group][tp] = ends[tp]
        return behind
    finally:
        await stop_within("parking-check", admin.close)
        await stop_within("parking-check", consumer.stop)
