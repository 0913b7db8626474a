"""Kafka clients built one way for the whole gateway: consumers per destination, the DLQ producer, startup retry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.backoff import FullJitterBackoff
from gateway.config import KafkaConfig
from gateway.kafka_security import client_security_kwargs

log = structlog.get_logger("gateway.kafka")


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
        # A dead letter is the source message plus ~300 bytes of headers; the client must never refuse one
        # that the broker accepted as a source message (the broker's own limit still applies).
        max_request_size=16 * 1024 * 1024,
        **client_security_kwargs(kafka.security),
    )


async def start_with_retry(what: str, start: Callable[[], Awaitable[None]], stopping: asyncio.Event) -> bool:
    """Start a Kafka client, retrying while the cluster is unreachable; False if asked to stop first."""
    backoff = FullJitterBackoff(initial=0.5, maximum=15.0)
    attempt = 0
    while not stopping.is_set():
        try:
            await start()
            return True
        except KafkaError as error:
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("kafka unreachable, retrying", client=what, error=type(error).__name__, delay_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
    return False
