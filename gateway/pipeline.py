"""One destination's pipeline: consume, decode, route, map, batch, deliver, settle, commit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gateway.batcher import Item, Lane
from gateway.commits import Committer, EncodingBudget, settled_above_committed
from gateway.config import KafkaConfig
from gateway.consumer_health import BrokerContact, ReadFailures
from gateway.dead_letter_log import DeadLetterLog
from gateway.decode_cache import DecodeCache
from gateway.delivery_stage import DeliveryStage, lane_count
from gateway.destination import Destination
from gateway.dlq import DeadLetterWriter
from gateway.errors import EventError
from gateway.kafka_clients import (
    KAFKA_CALL_TIMEOUT,
    SHUTDOWN_CALL_TIMEOUT,
    destination_consumer,
    poll,
    start_with_retry,
    stop_within,
    within,
)
from gateway.load import HOLD_CHECK_MS, Bound, Hold, Load, message_bytes, records_bytes
from gateway.logs import destination_logger
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offset_metadata import SettledAbove
from gateway.offsets import PartitionOffsets
from gateway.parking import Parking
from gateway.start_position import StartFilter, reset_policy, seek_new_partitions, start_time
from gateway.waits import wait_event

MAX_POLL_RECORDS = 1000
"""Most records one poll takes. Each poll's records are decoded, mapped and placed in one go (about 13 ms for 1,000 of
the standard mix), and the loop is given back after it: while a backlog drains, that is the longest anything else in
the process waits (the other destinations' sends, the listener). Draining 300,000 events (bench/unibo_pipeline.py),
the loop's longest stall was 138-150 ms at 5,000 a poll and 49-50 ms at 1,000, at the same throughput."""
POLL_MS = 100
"""Longest a poll waits for records."""
REVOKE_SETTLE_TIMEOUT = 10.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: Pipeline, consumer: AIOKafkaConsumer | None = None) -> None:
        self._pipeline = pipeline
        self._consumer = consumer  # the first assignment may come before the pipeline holds its consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._pipeline.start_filter.forget(revoked)
        await self._pipeline.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pipeline, consumer = self._pipeline, self._consumer
        with pipeline.assigning(consumer, assigned):
            start = pipeline.start_filter
            if start.when is not None and consumer is not None:
                start.begin(await seek_new_partitions(consumer, assigned, start.when))
            await pipeline.on_assigned(assigned, consumer)


class Pipeline:
    """Runs one destination as its own consumer group; offsets move only past settled messages."""

    def __init__(
        self,
        destination: Destination,
        kafka: KafkaConfig,
        dead_letters: DeadLetterWriter,
        metrics: Metrics,
        shared: object | None = None,
        encoding: EncodingBudget | None = None,
        decodes: DecodeCache | None = None,
    ) -> None:
        """`shared` is the destination's connector extension's shared part, handed to its client. `encoding` is the
        share of time for commit metadata this pipeline holds with the others of its gateway (its own when None).
        `decodes` is the cache of decoded records the pipelines of a gateway share (none: each decodes alone)."""
        self.destination = destination
        self.name = destination.name
        self._log = destination_logger("gateway.pipeline", self.name)
        self._kafka = kafka
        self._dead_letters = dead_letters
        self.metrics = DestinationMetrics(metrics, destination.name)
        config = destination.config
        # A lane's batch never holds more than its share of the bytes bound: the lanes cannot fill it between them
        # with batches that each wait to be full.
        batch_cap = max(1024, config.max_in_flight_bytes // (2 * lane_count(destination)))
        self._stage = DeliveryStage(
            destination,
            self.metrics,
            self._dead_letter_items,
            batch=dataclasses.replace(destination.batch, max_bytes=min(destination.batch.max_bytes, batch_cap)),
            shared=shared,
            on_state_change=self._update_up,
            on_lane_failed=self._lane_failed,
            decoder=decodes.decode if decodes is not None else None,
        )
        self._route = self._stage.router.route
        self._place = self._stage.place
        self._tenants = self._stage.tenants
        # Bounds on what is held unsettled: the destination's, and each tenant's share of it, so that one tenant's
        # backlog (halted, or stuck on a record) fills only its own share (docs/parking.md).
        self._bound = Bound(config.max_in_flight, config.max_in_flight_bytes)
        shares = max(1, len(self._tenants))
        self._tenant_bounds = {
            name: Bound(config.max_in_flight // shares, config.max_in_flight_bytes // shares) for name in self._tenants
        }
        self._loads = {name: Load() for name in self._tenants}
        self._unrouted = Load()  # messages no tenant holds: dead letters of undecodable or unroutable ones, parkings
        self._average_bytes = 1024  # of a held message, for turning room in bytes into a poll's max_records
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._hold = Hold()  # at the bound: hold, then pause (gateway/load.py)
        self._assigning: set[TopicPartition] = set()  # assigned, paused until their assignment is prepared
        self._commit_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._committer: Committer | None = None
        self._encoding = encoding if encoding is not None else EncodingBudget()
        self._commit_failures = 0  # in a row
        # Offsets the previous owner of a newly assigned partition committed as settled: skipped when read.
        self._settled_before: dict[TopicPartition, SettledAbove] = {}
        self.start_filter = StartFilter(start_time(config.start_from))
        self._fatal: BaseException | None = None
        self._reads = ReadFailures(destination.name, self.metrics)
        self._dead_letter_log = DeadLetterLog(destination.name)
        self._contact = BrokerContact(destination.name, self.metrics)
        self.joined = False
        self.filtered_pending = 0  # events filtered since the last poll, added to the counter once per poll
        self.metrics.up.set(1)
        self._parking = (
            Parking(
                destination,
                kafka,
                self._tenants,
                self._tenant_bounds,
                self._loads,
                self.metrics,
                self._ingest_parked,
                self._dead_letter_unparked,
                self._purge_closed,
                self._replaying,
                self._stage.held,
                self,
            )
            if destination.parks
            else None
        )

    # ---- state -------------------------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """True while any tenant is halted on credentials."""
        return any(tenant.halted for tenant in self._tenants.values())

    @property
    def kafka_problem(self) -> str | None:
        """Why this destination cannot read from Kafka right now (readiness), or None."""
        if self._reads.error is not None:
            return "consumer_error"
        return "kafka_unreachable" if self._contact.lost else None

    @property
    def in_flight(self) -> int:
        """Consumed messages not yet settled."""
        return sum(len(offsets) for offsets in self._partitions.values())

    def held(self) -> Load:
        """Messages held unsettled and their bytes, over every tenant."""
        total = Load()
        for load in (*self._loads.values(), self._unrouted):
            total.events += load.events
            total.bytes += load.bytes
        return total

    def _update_up(self) -> None:
        self.metrics.up.set(0 if self.halted or self._stage.engine.failing else 1)

    # ---- consume path ------------------------------------------------------------------------------------------

    def _lanes(self) -> list[Lane]:
        return self._stage.lanes()

    def _lane_failed(self, error: BaseException) -> None:
        # A lane never ends by itself: its records would stall unsettled. Fail the pipeline loudly instead; nothing is
        # committed past them, so a restart re-delivers.
        self._task_failed("lane", error, fatal=True)

    def _task_failed(self, task: str, error: BaseException, *, fatal: bool) -> None:
        """A background task failed with a bug: logged with its trace and counted; a fatal one (its records could
        never settle, or commits would stop) fails the pipeline, and so the process, without committing past it."""
        self.metrics.task_failure(task).inc()
        self._log.error("background task failed", task=task, fatal=fatal, exc_info=error)
        if fatal and self._fatal is None:
            self._fatal = error

    async def _guarded(self, task: str, work: Any) -> None:
        """Run a background task whose end would stall records unsettled: a failure fails the pipeline."""
        try:
            await work
        except Exception as error:
            self._task_failed(task, error, fatal=True)

    def _check_fatal(self) -> None:
        if self._fatal is None and self._parking is not None:
            failure = self._parking.reader_failure()
            if failure is not None:
                self._task_failed("parking_reader", failure, fatal=True)
        if self._fatal is not None:
            raise RuntimeError(f"a background task of destination {self.name} failed") from self._fatal

    def ingest(
        self, tp: TopicPartition, offsets: PartitionOffsets, message: Any, consumed_at: float, monotonic: float
    ) -> None:
        """Take one consumed message through decode, route and map onto its lanes (synchronous: the hot path)."""
        if offsets.settled_before(message.offset):  # settled before a restart or rebalance: not sent again
            offsets.track(message.offset, 0)
            self.metrics.skipped_settled.inc()
            return
        self._take(offsets, message.offset, message, consumed_at, monotonic, False)

    def _ingest_parked(self, offsets: PartitionOffsets, offset: int, message: Any) -> None:
        """A parked message read back (tracked at its parking-topic `offset`): onto its lanes, never parked again."""
        self._take(offsets, offset, message, time.time(), time.monotonic(), True)

    def _take(
        self, offsets: PartitionOffsets, offset: int, message: Any, consumed_at: float, monotonic: float, parked: bool
    ) -> None:
        size = message_bytes(message)
        try:
            route = self._route(message)
        except EventError as error:  # undecodable, unroutable, or a connector bug (which costs one message only)
            offsets.track(offset, 1, self._unrouted, size)
            self._spawn_dead_letter(offsets, offset, message, error.reason, error.detail, None)
            return
        if route is None:
            offsets.track(offset, 0)
            self.filtered_pending += 1  # counted once per poll (_consume): a counter's lock per event adds up
            return
        event, tenant, records = route
        parking = self._parking
        # Read again below where the previous owner had read: unsettled then, so older than what it parked.
        if parking is not None and not parked and tenant.name in parking.parking and offset >= offsets.replay_end:
            offsets.track(offset, 1, self._unrouted, size)  # held until the parking topic acknowledged it
            parking.park(offsets, offset, message, tenant.name)
            return
        offsets.track(offset, len(records), self._loads[tenant.name], size + records_bytes(records))
        self._place(tenant, records, event, offsets, offset, message, consumed_at, monotonic)

    # ---- dead letters ------------------------------------------------------------------------------------------

    def _spawn_dead_letter(
        self,
        offsets: PartitionOffsets,
        offset: int,
        message: Any,
        reason: str,
        detail: str,
        status: int | None,
        record_id: str | None = None,
    ) -> None:
        async def write() -> None:
            if await self._dead_letters.write(message, self.name, reason, detail, status, record_id):
                self.metrics.dead_letters_reduced.inc()
            self.metrics.dead_lettered(reason).inc()
            offsets.settle(offset)
            self._dead_letter_log.add(reason, status, message, detail)

        task = asyncio.create_task(write())
        self._side_tasks.add(task)
        task.add_done_callback(self._dead_letter_ended)

    def _dead_letter_ended(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # not a Kafka outage (retried inside): a bug, and the source offset can never settle
            self._task_failed("dead_letter", error, fatal=True)

    def _dead_letter_items(self, items: Sequence[Item], reason: str, status: int | None, detail: str) -> None:
        for item in items:  # one dead letter per refused record, naming it: a replay re-sends only that record
            self._spawn_dead_letter(
                item.offsets, item.offset, item.message, reason, detail, status, item.record.record_id
            )

    def _dead_letter_unparked(
        self, offsets: PartitionOffsets, offset: int, message: Any, reason: str, detail: str
    ) -> None:
        self._spawn_dead_letter(offsets, offset, message, reason, detail, None)

    def _replaying(self) -> bool:
        """True while records read again below a previous owner's read position are not all settled: parked events
        wait for them, as they are older. Also true until the partitions are assigned and their commit metadata read
        (the metadata held for a partition not yet fetched says what was read before)."""
        if not self.joined or self._settled_before:
            return True
        for tracker in self._partitions.values():
            position = tracker.committable()
            if position is not None and position < tracker.replay_end:
                return True
        return False

    def tracking(self, topic: str, partition: int) -> PartitionOffsets | None:
        """The live tracker of a source partition this pipeline consumes and read from (None otherwise)."""
        tracker = self._partitions.get(TopicPartition(topic, partition))
        return tracker if tracker is not None and not tracker.closed else None

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of a source partition, whoever owns it (None: none, or no answer)."""
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            return await within(KAFKA_CALL_TIMEOUT, consumer.committed(TopicPartition(topic, partition)))
        except (KafkaError, AssertionError):
            return None

    def _purge_closed(self) -> None:
        for lane in self._lanes():
            lane.batcher.purge(lambda item: not item.offsets.closed)

    # ---- rebalancing -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def assigning(self, consumer: AIOKafkaConsumer | None, assigned: list[TopicPartition]) -> Iterator[None]:
        """Keep newly assigned partitions paused while their assignment is prepared (the start position, the
        previous owner's settled offsets, parked events to wait for). aiokafka starts fetching them before it calls
        the rebalance listener, and returns what it fetched while the listener awaits; records of a paused
        partition are not returned, and are fetched again once it resumes."""
        if consumer is None or not assigned:
            yield
            return
        self._assigning.update(assigned)
        consumer.pause(*assigned)
        try:
            yield
        finally:
            self._assigning.difference_update(assigned)
            if self._hold.paused or (self._parking is not None and self._parking.unchecked):
                self._hold.paused = True  # left paused: backpressure resumes them with the rest once it lets records in
            else:
                owned = consumer.assignment()
                consumer.resume(*[tp for tp in assigned if tp in owned])

    async def on_assigned(self, assigned: list[TopicPartition], consumer: AIOKafkaConsumer | None = None) -> None:
        """Joined the group (possibly with no partitions: more replicas than partitions); read what the partitions'
        previous owners committed as settled above their watermarks, and restore parked brands (nothing of these
        partitions is fetched meanwhile: `assigning`)."""
        self.joined = True
        # A tracker still held for a newly assigned partition is stale (its revocation was never announced, e.g. the
        # membership was lost): consumption restarts from the committed offset, so start tracking afresh.
        stale = [tp for tp in assigned if tp in self._partitions]
        if stale:
            self._forget(stale)
        fresh = [tp for tp in assigned if tp not in self._partitions]
        consumer = consumer or self._consumer
        if consumer is not None and fresh:
            settled, ignored = await settled_above_committed(consumer, fresh)
            self._settled_before.update(settled)
            for tp, reason in ignored.items():
                self.metrics.metadata_ignored(reason)
                self._log.warning(
                    "commit metadata ignored; records above the committed offset will be sent again",
                    partition=f"{tp.topic}/{tp.partition}",
                    reason=reason,
                )
        if self._parking is not None and fresh:
            await self._parking.restore()  # before anything of them is fetched, so none overtakes a parked event
        self._log.info(
            "partitions assigned",
            partitions=sorted(f"{t.topic}/{t.partition}" for t in assigned),
        )

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Settle what can be settled quickly, commit up to the watermark, abandon the rest uncommitted."""
        self.joined = False  # a rebalance (or a lost membership) is under way: ready again once assigned
        owned = [tp for tp in revoked if tp in self._partitions]
        if not owned:
            return
        if any(len(self._partitions[tp]) for tp in owned):
            for lane in self._lanes():
                lane.flush()
            deadline = time.monotonic() + REVOKE_SETTLE_TIMEOUT
            # Polling keeps the hot settle path free of per-partition events; revocations are rare.
            while any(len(self._partitions[tp]) for tp in owned) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            for lane in self._lanes():
                lane.flushing = False
        await self._commit(owned)
        abandoned = self._forget(owned)
        # Clients stop before their next request for these partitions; one already on the wire is let finish
        # (within its timeout) before the partitions go, so the next owner never sends them at the same time.
        deadline = time.monotonic() + self.destination.config.timeout + 1.0
        while self._stage.engine.sending_revoked() and time.monotonic() < deadline:  # noqa: ASYNC110 - rare; see above
            await asyncio.sleep(0.02)
        self._log.info(
            "partitions revoked",
            partitions=sorted(f"{t.topic}/{t.partition}" for t in owned),
            abandoned_uncommitted=abandoned,
        )

    def _forget(self, partitions: list[TopicPartition]) -> int:
        """Stop tracking partitions: late settles are ignored and their queued records dropped, uncommitted."""
        abandoned = 0
        for tp in partitions:
            tracker = self._partitions.pop(tp, None)
            self._settled_before.pop(tp, None)
            if tracker is not None:
                abandoned += tracker.close()
            self.metrics.forget_partition(tp.topic, tp.partition)
        self._purge_closed()
        return abandoned

    # ---- commits and lag ---------------------------------------------------------------------------------------

    async def _commit(self, only: list[TopicPartition] | None = None, limit: float = KAFKA_CALL_TIMEOUT) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        committer = self._committer
        if committer is None or committer.consumer is not consumer:
            committer = self._committer = Committer(
                consumer, self._kafka.commit_metadata_max_bytes, budget=self._encoding, owner=self.name
            )
        async with self._commit_lock:
            commits = await committer.commit(self._partitions, only, limit)
            if commits is None:
                failure = committer.last_failure or KafkaError("commit failed")
                self.metrics.commit("failed")
                self._contact.failed("commit", failure)
                self._commit_failures += 1
                if self._commit_failures % 50 == 1:  # commits run every 0.2 s: one line per streak, then every 50th
                    self._log.warning(
                        "offset commit failed; will retry",
                        error=type(failure).__name__,
                        failures=self._commit_failures,
                    )
            elif commits:
                self._contact.answered()
                self.metrics.commit("ok")
                self._commit_failures = 0

    async def _commit_forever(self) -> None:
        """Commit soon after settles (at most every `commit_after_settle`), else every `commit_interval`; a round
        with nothing new commits nothing."""
        kafka = self._kafka
        period = min(kafka.commit_after_settle, kafka.commit_interval) or kafka.commit_interval
        while True:
            committer = self._committer
            await asyncio.sleep(committer.delay(period) if committer is not None else period)
            try:
                await self._commit()
            except Exception as error:  # Kafka failures are handled inside: this is a bug, and commits must not stop
                self._task_failed("commit", error, fatal=True)
                return

    async def _lag_forever(self) -> None:
        while True:
            await asyncio.sleep(self._kafka.lag_interval)
            try:
                await self.refresh_lag()
            except Exception as error:  # lag and the readiness probe go stale, delivery is unaffected: keep trying
                self._task_failed("lag", error, fatal=False)

    async def refresh_lag(self) -> None:
        """Lag = log end offset minus the committable offset, per owned partition."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = list(consumer.assignment())
        try:
            # Also the probe of the broker for readiness: with no partition, a metadata request stands in.
            ends = await within(KAFKA_CALL_TIMEOUT, consumer.end_offsets(assigned)) if assigned else {}
            if not assigned:
                await within(KAFKA_CALL_TIMEOUT, consumer.topics())
        except KafkaError as error:
            self._contact.failed("end_offsets" if assigned else "metadata", error)
            return
        self._contact.answered()
        for tp, end in ends.items():
            tracker = self._partitions.get(tp)
            position = tracker.committable() if tracker is not None else None
            if position is None:
                try:
                    position = await within(KAFKA_CALL_TIMEOUT, consumer.position(tp))
                except (KafkaError, AssertionError):
                    continue
            self.metrics.lag(tp.topic, tp.partition, max(0, end - position))

    # ---- backpressure ------------------------------------------------------------------------------------------

    def _apply_backpressure(self, consumer: AIOKafkaConsumer, now: float) -> int | None:
        """Hold, then pause (gateway/load.py, Hold), while the destination or a tenant is at its bound (in count or
        bytes); resume once back at half. Returns how many messages the next poll may take, or None while holding."""
        total = self.held()
        self.metrics.in_flight_bytes.set(total.bytes)
        if total.events:
            self._average_bytes = max(64, total.bytes // total.events)
        average = self._average_bytes
        parking = self._parking
        parked: set[str] = set()
        holding = False
        if parking is not None:
            parking.consider(now)
            parked = parking.parking  # their events are not held here: their bound is their reader's
            holding = bool(parking.holding) or parking.unchecked
        # A parked brand's share cannot drain while it is halted: it counts against the destination's bound, but is
        # held aside when deciding whether the rest is back at half (a share may go over half the destination's
        # bound by a message's bytes, and would otherwise keep consumption paused for as long as the brand is halted).
        aside = _sum([self._loads[name] for name in parked])
        full = self._bound.check(total, now, aside) or holding
        room = self._bound.room(total, average)
        for name, bound in self._tenant_bounds.items():
            if name in parked:
                continue
            load = self._loads[name]
            full = bound.check(load, now) or full
            room = min(room, bound.room(load, average))
        if full or self._bound.half_full(total, aside):
            # The bound, not max_events, caps the batches now: lingering for a batch that cannot fill would only let
            # consumption run into the bound and wait there. Sending from half the bound overlaps the sends with
            # reading the other half. A parked brand's share is left out: it cannot drain, and counted it would
            # keep the other brands' lanes from lingering for as long as it is halted.
            self._stage.hurry()
        if self._hold.holds(consumer, full, now, keep_paused=self._assigning):
            return None
        return max(1, min(MAX_POLL_RECORDS, room))

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event, grace: float) -> None:
        """Consume until `stopping` is set, then drain for up to `grace` seconds, commit and leave the group."""
        reset = reset_policy(self.destination.config.start_from, self._kafka.auto_offset_reset)
        group = self.destination.group_id(self._kafka.group_prefix)
        consumer = destination_consumer(self._kafka, group, self.name, reset)
        consumer.subscribe(topics=list(self._kafka.topics), listener=_Rebalance(self, consumer))
        parking = self._parking
        if parking is not None and not await parking.start(stopping):  # before reading: assignments restore brands
            await parking.stop()
            return
        if not await start_with_retry(f"consumer:{self.name}", consumer.start, stopping):
            await consumer.stop()
            if parking is not None:
                await parking.stop()
            return
        self._consumer = consumer
        self._log.info("pipeline started", group=self.destination.group_id(self._kafka.group_prefix))
        side = [asyncio.create_task(self._commit_forever()), asyncio.create_task(self._lag_forever())]
        if parking is not None:
            side += [
                asyncio.create_task(self._guarded("parking_writer", parking.write_forever())),
                asyncio.create_task(self._guarded("parking_reader", parking.supervise_forever())),
            ]
        try:
            await self._consume(consumer, stopping)
            await self._drain(grace)
            self._check_fatal()  # a lane or dead letter that failed during the drain fails the run too
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if parking is not None:
                await parking.stop()
            await self._cancel_workers()
            try:
                await self._commit(limit=SHUTDOWN_CALL_TIMEOUT)
            finally:
                self._consumer = None
                await stop_within(f"consumer:{self.name}", consumer.stop)
                await self._stage.close()
                self._dead_letter_log.flush()
                self._log.info("pipeline stopped", unsettled=self.in_flight)

    async def _consume(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> None:
        partitions = self._partitions
        consumed = self.metrics.consumed
        while not stopping.is_set():
            self._check_fatal()
            self.metrics.in_flight.set(self.in_flight)
            room = self._apply_backpressure(consumer, time.monotonic())
            if room is None:  # holding at the bound
                await wait_event(stopping, HOLD_CHECK_MS / 1000)
                continue
            try:
                batches = await poll(consumer, timeout_ms=POLL_MS, max_records=room)
            except KafkaError as error:  # never ends the pipeline, never a silent loop: counted, logged, backed off
                delay = self._reads.failed(error)
                await wait_event(stopping, delay)
                continue
            self._reads.succeeded()
            now, monotonic = time.time(), time.monotonic()
            for tp, messages in batches.items():
                offsets = partitions.get(tp)
                if offsets is not None and offsets.next_offset is not None and messages[0].offset < offsets.next_offset:
                    # The partition was rewound (a reset or a lost membership): track it afresh from here.
                    self._forget([tp])
                    offsets = None
                if offsets is None:
                    offsets = partitions[tp] = PartitionOffsets(self._settled_before.pop(tp, None))
                consumed.inc(len(messages))
                skipped = self.start_filter.older(tp, messages) if self.start_filter.pending else 0
                if skipped:
                    self._skip_older(offsets, messages[:skipped])
                for message in messages[skipped:] if skipped else messages:
                    self.ingest(tp, offsets, message, now, monotonic)
            if self.filtered_pending:
                self.metrics.filtered.inc(self.filtered_pending)
                self.filtered_pending = 0

    def _skip_older(self, offsets: PartitionOffsets, messages: Sequence[Any]) -> None:
        """Records older than start_from at the head of a fresh partition: settled as filtered, never delivered."""
        for message in messages:
            offsets.track(message.offset, 0)
        self.metrics.filtered.inc(len(messages))

    async def _drain(self, grace: float) -> None:
        """Stop fetching, send what is queued without lingering, wait for settlement within the grace period."""
        for lane in self._lanes():
            lane.flush()
        if self._unsettled():
            self._log.info("draining", in_flight=self.in_flight, grace_s=grace)
            deadline = time.monotonic() + grace
            # Polled rather than signalled, which keeps every settle on the hot path free of callbacks.
            while self._unsettled() and self._fatal is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        self.metrics.in_flight.set(self.in_flight)
        self.metrics.in_flight_bytes.set(self.held().bytes)

    def _unsettled(self) -> int:
        return self.in_flight + (self._parking.pending if self._parking is not None else 0)

    async def _cancel_workers(self) -> None:
        tasks = list(self._side_tasks)
        for task in tasks:
            task.cancel()
        await self._stage.stop()  # the lanes, and the per-key deliveries they handed off
        await asyncio.gather(*tasks, return_exceptions=True)


def _sum(loads: Sequence[Load]) -> Load:
    """The loads together."""
    total = Load()
    total.events = sum(load.events for load in loads)
    total.bytes = sum(load.bytes for load in loads)
    return total
