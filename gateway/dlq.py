"""The dead-letter topic: the original message bytes plus headers that say where it came from and why it failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway.backoff import FullJitterBackoff
from gateway.logs import scrubber

log = structlog.get_logger("gateway.dlq")

MAX_ERROR_BYTES = 1024
REASONS = frozenset(
    {"invalid_json", "invalid_event", "unknown_brand", "mapping_error", "unsupported_currency", "rejected"}
)


def truncate_utf8(text: str, limit: int = MAX_ERROR_BYTES) -> bytes:
    """Encode `text` as UTF-8 cut to at most `limit` bytes without splitting a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


RECORD_HEADER = "gateway-record"
"""Extension to the DESIGN.md headers: the one vendor record (its `record_id`) that failed, when the message mapped to
several and only that one was refused, so a replay re-sends that record and not its delivered siblings."""


def dead_letter_headers(
    message: Any,
    destination: str,
    reason: str,
    error: str,
    status: int | None,
    failed_at: datetime | None = None,
    record_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """DESIGN.md headers, after the message's own headers (kept so a replay sees what the producer sent)."""
    when = (failed_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    error = scrubber.clean(error)  # a vendor that echoes our request (key included) must not leak it into the DLQ
    own = [(key, value) for key, value in (message.headers or ()) if not key.startswith("gateway-")]
    return [
        *own,
        ("gateway-destination", destination.encode()),
        ("gateway-reason", reason.encode()),
        ("gateway-error", truncate_utf8(error)),
        ("gateway-status", b"" if status is None else str(status).encode()),
        ("gateway-source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ("gateway-failed-at", when.encode()),
        *([(RECORD_HEADER, record_id.encode())] if record_id is not None else []),
    ]


class DeadLetterWriter:
    """Writes dead letters and returns only once Kafka acknowledged them, retrying for as long as it takes."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, backoff: FullJitterBackoff | None = None) -> None:
        self._producer = producer
        self.topic = topic
        self._backoff = backoff or FullJitterBackoff(initial=0.1, maximum=5.0)

    async def write(
        self,
        message: Any,
        destination: str,
        reason: str,
        error: str,
        status: int | None = None,
        record_id: str | None = None,
    ) -> None:
        """Write one dead letter for `message` (for its vendor record `record_id` when the vendor refused only that
        one); the caller settles the source offset after this returns."""
        if reason not in REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}")
        headers = dead_letter_headers(message, destination, reason, error, status, record_id=record_id)
        await self.send(message, headers, destination)

    async def send(self, message: Any, headers: list[tuple[str, bytes]], destination: str) -> None:
        """Write `message`'s key and value with these headers; returns once acknowledged (retries until then)."""
        attempt = 0
        while True:
            try:
                await self._producer.send_and_wait(self.topic, message.value, key=message.key, headers=headers)
                return
            except KafkaError as failure:
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.warning(
                    "dead-letter write failed, retrying",
                    topic=self.topic,
                    destination=destination,
                    error=type(failure).__name__,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
