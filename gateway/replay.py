"""DLQ replay: re-deliver one destination's dead letters through its connector and the same delivery engine.

It reads the dead-letter topic from the replay group's committed position (`<group_prefix>.<destination>.replay`) up
to the end the topic had when the run started, takes the destination's records (header `gateway-destination`) that
pass the selection, and sends them like `gateway run` would: decode, route, map, lanes, DeliveryEngine. A record that
fails again is written back to the topic with `gateway-attempt` incremented. The group's offsets move only past
settled records, so an interrupted replay resumes where it stopped without re-sending what was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from gateway.batcher import Item
from gateway.commits import Committer, settled_above_committed
from gateway.connector import VendorRecord
from gateway.delivery_stage import DeliveryStage
from gateway.destination import Destination, ResolvedConfig
from gateway.dlq import RECORD_HEADER, DeadLetterWriter
from gateway.errors import EventError
from gateway.extensions import ExtensionContext, extensions_of
from gateway.kafka_clients import dead_letter_producer, poll, start_with_retry
from gateway.kafka_security import client_security_kwargs
from gateway.logs import destination_logger, scrubber
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offset_metadata import SettledAbove
from gateway.offsets import PartitionOffsets
from gateway.replay_records import (
    PartitionSpan,
    ReplayOffsets,
    ReplaySelection,
    ReplaySummary,
    failed_again_headers,
    gateway_headers,
)

Progress = Callable[[ReplaySummary, int], None]


class Replay:
    """One `gateway replay` run for one destination."""

    def __init__(
        self,
        config: ResolvedConfig,
        selection: ReplaySelection,
        *,
        dry_run: bool = False,
        from_beginning: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        scrubber.register(config.secrets())  # as `gateway run` does: write-backs and logs never carry a secret
        self.kafka = config.gateway.kafka
        self.destination: Destination = config.destination(selection.destination)
        self._log = destination_logger("gateway.replay", self.destination.name)
        self.selection = selection
        self.dry_run = dry_run
        self.from_beginning = from_beginning
        self.group = f"{self.destination.group_id(self.kafka.group_prefix)}.replay"
        self.summary = ReplaySummary(selection.destination, self.kafka.dlq_topic, self.group, dry_run=dry_run)
        self._progress = progress
        self.metrics = Metrics(CollectorRegistry())
        self._partitions: dict[TopicPartition, ReplayOffsets] = {}
        self._settled_before: dict[TopicPartition, SettledAbove] = {}  # what an interrupted run already settled
        self._committer: Committer | None = None
        self._spans: dict[TopicPartition, PartitionSpan] = {}
        # (partition, offset, failed record_id or None) -> its write-back task; and the dead letters that failed again
        self._failed: dict[tuple[int, int, str | None], asyncio.Task[None]] = {}
        self._failed_letters: set[tuple[int, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stage: DeliveryStage | None = None
        self._writer: DeadLetterWriter | None = None

    @property
    def in_flight(self) -> int:
        """Selected records read but not settled yet."""
        return sum(len(offsets) for offsets in self._partitions.values())

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> ReplaySummary:
        """Replay until the selection is exhausted or `stopping` is set; returns the tally with offsets committed."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.servers,
            group_id=self.group,
            client_id=f"{self.kafka.client_id}.{self.destination.name}.replay",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_security_kwargs(self.kafka.security),
        )
        if not await start_with_retry("replay-consumer", consumer.start, stopping):
            await consumer.stop()
            self.summary.interrupted = True
            return self.summary
        try:
            await self._position(consumer)
            if self.dry_run:
                await self._read(consumer, stopping)
            else:
                await self._replay(consumer, stopping)
        finally:
            await consumer.stop()
        return self.summary

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Assign every DLQ partition at the group's position (or the beginning), and note where each ends."""
        await consumer.topics()
        numbers = consumer.partitions_for_topic(self.kafka.dlq_topic) or set()
        partitions = [TopicPartition(self.kafka.dlq_topic, n) for n in sorted(numbers)]
        if not partitions:
            return
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        if not self.from_beginning:
            self._settled_before, _ = await settled_above_committed(consumer, partitions)
        for tp in partitions:
            committed = None if self.from_beginning else await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
            self._spans[tp] = PartitionSpan(await consumer.position(tp), ends[tp])
        self._update_total(consumer)

    def _update_total(self, consumer: AIOKafkaConsumer) -> None:
        self.summary.total = sum(span.remaining(consumer.highwater(tp)) for tp, span in self._spans.items())

    async def _replay(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> None:
        producer = dead_letter_producer(self.kafka)
        if not await start_with_retry("dlq-producer", producer.start, stopping):
            await producer.stop()
            self.summary.interrupted = True
            return
        self._writer = DeadLetterWriter(producer, self.kafka.dlq_topic)
        context = ExtensionContext(self.destination, self.kafka, self.metrics, stopping, serve=False)
        extensions = extensions_of([context])
        extension = extensions.get(self.destination.name)
        metrics = DestinationMetrics(self.metrics, self.destination.name)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(producer.stop)
            if extension is not None:
                stack.push_async_callback(extension.stop)  # before start: a start that fails half-way is undone
                await extension.start()
            stage = self._stage = DeliveryStage(
                self.destination,
                metrics,
                self._dead_letter_items,
                shared=extension.shared if extension is not None else None,
            )
            stack.push_async_callback(stage.close)
            committer = asyncio.create_task(self._commit_forever(consumer))
            try:
                await self._read(consumer, stopping)
                await self._drain(stopping)
            finally:
                committer.cancel()
                await asyncio.gather(committer, return_exceptions=True)
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await stage.stop()
                await self._commit(consumer)
        self.summary.interrupted = self.summary.interrupted or self.in_flight > 0

    # ---- reading -----------------------------------------------------------------------------------------------

    async def _read(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> None:
        """Read what the topic held when the run started; each record is settled at once or handed to a lane.

        A partition is done once the consumer caught up with its high watermark, or at the first record appended
        after the start (this run's own write-backs, a running gateway's new dead letters). The start's end offsets
        alone are not relied on: some Kafka-compatible brokers (Tansu) under-report them.
        """
        started_ms = int(time.time() * 1000)
        active = set(self._spans)
        max_in_flight = self.destination.config.max_in_flight
        stage = self._stage  # None in a dry run, which sends nothing
        while active and not stopping.is_set() and not self._limit_reached():
            if self.in_flight >= max_in_flight:
                if stage is not None:
                    stage.hurry()  # nothing more is read to fill the lanes' batches
                await asyncio.sleep(0.05)
                continue
            self._report()
            try:
                batches = await poll(consumer, *active, timeout_ms=200, max_records=500)
            except KafkaError as error:
                self._log.warning("dead-letter read failed, retrying", error=type(error).__name__)
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batches.items():
                span = self._spans[tp]
                for message in messages:
                    if (message.offset >= span.end and message.timestamp >= started_ms) or self._limit_reached():
                        span.done = True
                        break
                    span.read += 1
                    self._take(tp, message)
            for tp in list(active):
                span = self._spans[tp]
                highwater = consumer.highwater(tp)
                if span.done or (highwater is not None and await consumer.position(tp) >= highwater):
                    span.done = True
                    active.discard(tp)
            self._update_total(consumer)
        self.summary.interrupted = stopping.is_set() and bool(active)
        self._report()

    def _limit_reached(self) -> bool:
        limit = self.selection.limit
        return limit is not None and self.summary.selected >= limit

    def _offsets(self, tp: TopicPartition) -> ReplayOffsets:
        offsets = self._partitions.get(tp)
        if offsets is None:
            offsets = self._partitions[tp] = ReplayOffsets(
                lambda offset: self._settled(tp.partition, offset), self._settled_before.pop(tp, None)
            )
        return offsets

    def _take(self, tp: TopicPartition, message: Any) -> None:
        """Classify one dead letter: another destination's, filtered out, or replayed."""
        summary = self.summary
        summary.read += 1
        offsets = self._offsets(tp)
        if offsets.settled_before(message.offset):  # an interrupted run settled it: not sent twice
            summary.already_settled += 1
            offsets.track(message.offset, 0)
            return
        headers = gateway_headers(message)
        if headers.get("gateway-destination") != self.destination.name:
            summary.other_destinations += 1
            offsets.track(message.offset, 0)
            return
        if not self.selection.wants(headers):
            summary.skipped_by_filter += 1
            offsets.track(message.offset, 0)
            return
        summary.selected += 1
        summary.reasons[headers.get("gateway-reason", "")] += 1
        if self.dry_run:
            offsets.track(message.offset, 0)
            return
        self._deliver(offsets, message)

    def _deliver(self, offsets: ReplayOffsets, message: Any) -> None:
        """The pipeline's route for one record (gateway.routing), then onto its lanes: only the record it names."""
        stage = self._stage
        assert stage is not None
        try:
            route = stage.router.route(message)
        except EventError as error:  # undecodable, unroutable, or a connector bug: this record fails again
            offsets.track(message.offset, 1)
            self._fail(offsets, message, error.reason, error.detail, None)
            return
        if route is None:
            self._not_taken(offsets, message)
            return
        event, tenant, records = route
        records = _named_record(records, gateway_headers(message).get(RECORD_HEADER), self._log)
        offsets.track(message.offset, len(records))
        stage.place(tenant, records, event, offsets, message.offset, message, time.time(), time.monotonic())

    def _not_taken(self, offsets: ReplayOffsets, message: Any) -> None:
        offsets.track(message.offset, 0)
        self.summary.skipped_not_taken += 1

    # ---- verdicts ----------------------------------------------------------------------------------------------

    def _settled(self, partition: int, offset: int) -> None:
        if (partition, offset) not in self._failed_letters:
            self.summary.delivered += 1

    def _dead_letter_items(self, items: Sequence[Item], reason: str, status: int | None, detail: str) -> None:
        for item in items:
            self._fail(item.offsets, item.message, reason, detail, status, item.record.record_id)

    def _fail(
        self,
        offsets: PartitionOffsets,
        message: Any,
        reason: str,
        detail: str,
        status: int | None,
        record_id: str | None = None,
    ) -> None:
        """Write the record back to the DLQ once per failed vendor record (naming it, as the pipeline does), then
        settle; the summary counts the dead letter once."""
        key = (message.partition, message.offset, record_id)
        first = self._failed.get(key)
        if first is None:
            if (message.partition, message.offset) not in self._failed_letters:
                self._failed_letters.add((message.partition, message.offset))
                self.summary.failed += 1
            writer = self._writer
            assert writer is not None
            headers = failed_again_headers(message, reason, detail, status, record_id)
            first = self._failed[key] = self._spawn(writer.send(message, headers, self.destination.name))
            self._log.warning("failed again", reason=reason, status=status)

        async def settle_after_write(first: asyncio.Task[None] = first) -> None:
            await asyncio.shield(first)
            offsets.settle(message.offset)

        self._spawn(settle_after_write())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- drain, commit, progress -------------------------------------------------------------------------------

    async def _drain(self, stopping: asyncio.Event) -> None:
        """Send what is queued without lingering and wait for every record. Once stopping, queued records stay
        unsent (and uncommitted, for the next run) and only the batches at the vendor finish, within the grace."""
        stage = self._stage
        assert stage is not None
        for lane in stage.lanes():
            lane.flush()
        deadline: float | None = None
        while self.in_flight:
            if stopping.is_set():
                if deadline is None:
                    deadline = time.monotonic() + self.config.gateway.shutdown.grace_period
                    for lane in stage.lanes():
                        lane.batcher.purge(lambda _: False)
                    self._log.info("stopping: finishing the batches being sent", sending=stage.sending)
                writing = any(not task.done() for task in self._failed.values())
                if time.monotonic() >= deadline or (not stage.sending and not writing):
                    break
            if stage.lane_failure is not None:
                raise RuntimeError("a delivery lane of the replay failed") from stage.lane_failure
            self._report()
            await asyncio.sleep(0.05)
        self._report()

    async def _commit_forever(self, consumer: AIOKafkaConsumer) -> None:
        period = min(self.kafka.commit_after_settle, self.kafka.commit_interval) or self.kafka.commit_interval
        while True:
            await asyncio.sleep(self._committer.delay(period) if self._committer is not None else period)
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        if self._committer is None:
            self._committer = Committer(consumer, self.kafka.commit_metadata_max_bytes)
        if await self._committer.commit(self._partitions) is None:
            self._log.warning("replay commit failed; will retry", error=type(self._committer.last_failure).__name__)

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.summary, self.in_flight)


def _named_record(records: Sequence[VendorRecord], record_id: str | None, log: Any) -> Sequence[VendorRecord]:
    """Only the vendor record a dead letter names (its siblings were delivered); all of them when it names none, or
    when the mapping no longer makes it (options changed since): re-sending beats losing it."""
    if record_id is None:
        return records
    named = [record for record in records if record.record_id == record_id]
    if not named:
        log.warning("the dead letter's record is no longer mapped; replaying all its records", record_id=record_id)
        return records
    return named
