"""Kafka clients built one way for the whole gateway: consumers per destination, the DLQ producer, startup retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from gateway.backoff import FullJitterBackoff
from gateway.config import KafkaConfig
from gateway.kafka_security import client_security_kwargs
from gateway.retries import retry
from gateway.waits import bounded

log = structlog.get_logger("gateway.kafka")

T = TypeVar("T")

KAFKA_CALL_TIMEOUT = 5.0
"""Bound on one Kafka call made outside the poll loop (commit, end offsets, metadata): aiokafka retries some of them
for as long as the broker is away (a commit waits for a coordinator), and a revocation must not wait for that."""

SHUTDOWN_CALL_TIMEOUT = 2.0
"""Bound on each Kafka call after the drain (final commit, leaving the group, flushing the DLQ producer), so that
SIGTERM with the brokers unreachable still exits a few seconds after shutdown.grace_period."""


def destination_consumer(
    kafka: KafkaConfig, group_id: str, name: str, auto_offset_reset: str | None = None
) -> AIOKafkaConsumer:
    """A destination's consumer: its own group, manual commits only; `auto_offset_reset` overrides kafka's."""
    return AIOKafkaConsumer(
        bootstrap_servers=kafka.servers,
        group_id=group_id,
        client_id=f"{kafka.client_id}.{name}",
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset or kafka.auto_offset_reset,
        session_timeout_ms=kafka.session_timeout_ms,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        fetch_max_bytes=kafka.fetch_max_bytes,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        **client_security_kwargs(kafka.security),
    )


def dead_letter_producer(kafka: KafkaConfig) -> AIOKafkaProducer:
    """The producer for the dead-letter topic: every write acknowledged by all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=kafka.servers,
        client_id=f"{kafka.client_id}.dlq",
        acks="all",
        linger_ms=5,
        # The DLQ topic's own limit, checked before sending: a dead letter is the source message plus ~300 bytes of
        # headers, so one near the source topic's limit may not fit; DeadLetterWriter then writes it reduced. (The
        # broker's MESSAGE_TOO_LARGE, should the topic's limit be lower still, takes the same path.)
        max_request_size=kafka.dlq_max_message_bytes,
        **client_security_kwargs(kafka.security),
    )


async def start_with_retry(what: str, start: Callable[[], Awaitable[None]], stopping: asyncio.Event) -> bool:
    """Start a Kafka client, retrying while the cluster is unreachable; False if asked to stop first."""
    backoff = FullJitterBackoff(initial=0.5, maximum=15.0)
    return await retry(
        start,
        retry_on=KafkaError,
        backoff=backoff,
        log=log,
        message="kafka unreachable, retrying",
        fields={"client": what},
        stopping=stopping,
    )


async def poll(
    consumer: AIOKafkaConsumer, *partitions: TopicPartition, timeout_ms: int, max_records: int
) -> dict[TopicPartition, list[Any]]:
    """The next records of `consumer` (getmany), after a turn of the event loop. getmany hands over records fetched
    ahead without suspending, so a loop that only awaited it kept the event loop until its prefetch ran out: draining a
    backlog, 233-247 ms during which the other destinations' sends, the listener and the parking readers waited
    (bench/unibo_pipeline.py prints the loop's stalls). Every consume loop polls through here."""
    batches: dict[TopicPartition, list[Any]] = await consumer.getmany(
        *partitions, timeout_ms=timeout_ms, max_records=max_records
    )
    await asyncio.sleep(0)
    return batches


async def within(seconds: float, call: Awaitable[T]) -> T:
    """Await a Kafka call for at most `seconds`; past that it is cancelled and KafkaTimeoutError (a KafkaError) raised,
    so callers handle "no answer in time" like any other Kafka failure."""
    try:
        return await bounded(seconds, call)
    except TimeoutError as error:
        raise KafkaTimeoutError(f"no answer from Kafka within {seconds:g}s") from error


async def stop_within(what: str, stop: Callable[[], Awaitable[None]], seconds: float = SHUTDOWN_CALL_TIMEOUT) -> None:
    """Stop a Kafka client, abandoning it after `seconds`: with the brokers gone, leaving the group or flushing the
    producer would wait for them. Nothing is lost by abandoning: offsets were committed (or not) before this."""
    try:
        await within(seconds, stop())
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        # aiokafka's fetcher.close() awaits the fetch tasks it just cancelled and lets their CancelledError out when
        # a fetch was backing off (the brokers gone): not a cancellation of this task, so the shutdown goes on.
        log.warning("kafka client stopped with a stray cancellation", client=what)
    except KafkaError as error:
        log.warning("kafka client abandoned at shutdown", client=what, error=type(error).__name__, limit_s=seconds)
