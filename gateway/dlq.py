"""The dead-letter topic: the original message bytes plus headers that say where it came from and why it failed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from gateway.backoff import FullJitterBackoff
from gateway.errors import DeadLetterReason
from gateway.logs import scrubber
from gateway.retries import retry

log = structlog.get_logger("gateway.dlq")

MAX_ERROR_BYTES = 1024


def truncate_utf8(text: str, limit: int = MAX_ERROR_BYTES) -> bytes:
    """Encode `text` as UTF-8 cut to at most `limit` bytes without splitting a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


RECORD_HEADER = "gateway-record"
"""Extension to the dead-letter headers (docs/dead-letters.md): the one vendor record (its `record_id`) that failed,
when the message mapped to several and only that one was refused, so a replay re-sends that record and not its
delivered siblings."""


def dead_letter_headers(
    message: Any,
    destination: str,
    reason: str,
    error: str,
    status: int | None,
    failed_at: datetime | None = None,
    record_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """The dead-letter headers (docs/dead-letters.md), after the message's own headers (kept so a replay sees what the
    producer sent)."""
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


VALUE_DROPPED_HEADER = "gateway-value-dropped"
"""Extension to the dead-letter headers (docs/dead-letters.md), on a dead letter written in reduced form because the
topic refused it as too large: the original value's length in bytes. The value (and, if needed, the key and the
producer's own headers) is left out; `gateway-source` still names the original record (topic/partition/offset) to read
it from."""

TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)
"""The broker's MESSAGE_TOO_LARGE, or the producer's own max_request_size check: retrying the same bytes never helps."""


def reduced(
    message: Any, headers: list[tuple[str, bytes]], keep_own: bool
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The key and headers of a dead letter without its value: the gateway's headers and the drop marker, with the
    producer's own headers and key too unless `keep_own` is False (the last resort when even those are too large)."""
    size = len(message.value or b"")
    kept = headers if keep_own else [(key, value) for key, value in headers if key.startswith("gateway-")]
    return (message.key if keep_own else None), [*kept, (VALUE_DROPPED_HEADER, str(size).encode())]


class DeadLetterWriter:
    """Writes dead letters and returns only once Kafka acknowledged them, retrying transient failures for as long as
    it takes. A dead letter the topic refuses as too large is written reduced instead (see `reduced`)."""

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
    ) -> bool:
        """Write one dead letter for `message` (for its vendor record `record_id` when the vendor refused only that
        one); the caller settles the source offset after this returns. True when it was written reduced."""
        try:
            reason = DeadLetterReason(reason)
        except ValueError:
            raise ValueError(f"unknown dead-letter reason {reason!r}") from None
        headers = dead_letter_headers(message, destination, reason, error, status, record_id=record_id)
        return await self._send(message, headers, destination)

    async def send(self, message: Any, headers: list[tuple[str, bytes]], destination: str) -> None:
        """Write `message`'s key and value with these headers; returns once acknowledged (retrying transient failures),
        reduced when the topic refuses it as too large."""
        await self._send(message, headers, destination)

    async def _send(self, message: Any, headers: list[tuple[str, bytes]], destination: str) -> bool:
        """`send`; True when the dead letter had to be written reduced. Raises a TOO_LARGE error only when even the
        bare reduced form is refused."""
        source = f"{message.topic}/{message.partition}/{message.offset}"
        try:
            await self._send_until_acked(message.key, message.value, headers, destination)
            return False
        except TOO_LARGE as refused:
            log.error(
                "dead letter refused as too large; writing it without its value",
                topic=self.topic,
                destination=destination,
                source=source,
                value_bytes=len(message.value or b""),
                error=type(refused).__name__,
            )
        key, smaller = reduced(message, headers, keep_own=True)
        try:
            await self._send_until_acked(key, b"", smaller, destination)
        except TOO_LARGE:
            log.error(
                "reduced dead letter still too large; dropping its key and own headers",
                destination=destination,
                source=source,
            )
            key, smaller = reduced(message, headers, keep_own=False)
            await self._send_until_acked(key, b"", smaller, destination)
        return True

    async def _send_until_acked(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], destination: str
    ) -> None:
        await retry(
            lambda: self._producer.send_and_wait(self.topic, value, key=key, headers=headers),
            retry_on=KafkaError,
            give_up_on=TOO_LARGE,  # the same bytes are refused again: the caller writes them reduced
            backoff=self._backoff,
            log=log,
            message="dead-letter write failed, retrying",
            fields={"topic": self.topic, "destination": destination},
        )
