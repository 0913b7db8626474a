"""The dead-letter writer: headers per the contract, and no return before Kafka acknowledged the write."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from gateway.backoff import FullJitterBackoff
from gateway.dlq import RECORD_HEADER, VALUE_DROPPED_HEADER, DeadLetterWriter, dead_letter_headers, truncate_utf8
from gateway.replay_records import failed_again_headers


class FlakyProducer:
    """Fails the first `failures` sends, then acknowledges; records every attempt."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[dict[str, Any]] = []

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.attempts.append({"topic": topic, "value": value, "key": key, "headers": dict(headers)})
        if len(self.attempts) <= self.failures:
            raise KafkaConnectionError("broker unavailable")


def _message() -> SimpleNamespace:
    return SimpleNamespace(
        topic="events",
        partition=2,
        offset=41,
        key=b"p1",
        value=b"\x00raw",
        headers=[("trace", b"abc"), ("gateway-reason", b"stale")],
    )


async def test_write_retries_until_acknowledged() -> None:
    """A broker outage delays the dead letter (and so the commit) instead of losing it."""
    producer = FlakyProducer(failures=4)
    writer = DeadLetterWriter(producer, "events.dlq", FullJitterBackoff(initial=0.001, maximum=0.002))
    await asyncio.wait_for(writer.write(_message(), "unibo", "rejected", "bad item", 422), 5)
    assert len(producer.attempts) == 5
    last = producer.attempts[-1]
    assert last["topic"] == "events.dlq"
    assert last["value"] == b"\x00raw"
    assert last["key"] == b"p1"


def test_headers_follow_the_contract() -> None:
    """The contract headers are present; the producer's own headers are kept, stale gateway-* ones replaced."""
    headers = dead_letter_headers(_message(), "unibo", "rejected", "x" * 5000, 422)
    names = [name for name, _ in headers]
    assert names[0] == "trace"
    values = dict(headers)
    assert values["gateway-reason"] == b"rejected"
    assert values["gateway-status"] == b"422"
    assert values["gateway-source"] == b"events/2/41"
    assert values["gateway-destination"] == b"unibo"
    assert len(values["gateway-error"]) == 1024
    assert values["gateway-failed-at"].endswith(b"Z")
    assert names.count("gateway-reason") == 1


def test_truncation_never_splits_a_character() -> None:
    """Error text is cut to 1 KiB on a UTF-8 character boundary."""
    cut = truncate_utf8("é" * 1000)
    assert len(cut) <= 1024
    cut.decode("utf-8")


async def test_unknown_reason_is_a_bug() -> None:
    """Reasons are a closed set; anything else is refused loudly."""
    writer = DeadLetterWriter(FlakyProducer(0), "dlq")
    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        await writer.write(_message(), "unibo", "oops", "x")


def test_a_refused_record_is_named_and_the_name_survives_a_failed_replay() -> None:
    """`gateway-record` names the one vendor record that failed; a replay that fails again keeps naming it."""
    plain = dict(dead_letter_headers(_message(), "userwise", "rejected", "422", 422))
    assert RECORD_HEADER not in plain
    named = dead_letter_headers(_message(), "userwise", "rejected", "422", 422, record_id="tx-9")
    assert dict(named)[RECORD_HEADER] == b"tx-9"
    letter = SimpleNamespace(**{**vars(_message()), "headers": named})
    again = dict(failed_again_headers(letter, "rejected", "422 again", 422))
    assert again[RECORD_HEADER] == b"tx-9" and again["gateway-attempt"] == b"2"


class SizeLimitedProducer:
    """Refuses (like the broker's MESSAGE_TOO_LARGE) every record whose value, key and headers exceed `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.attempts: list[dict[str, Any]] = []

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.attempts.append({"value": value, "key": key, "headers": dict(headers)})
        size = len(value or b"") + len(key or b"") + sum(len(name) + len(data) for name, data in headers)
        if size > self.limit:
            raise MessageSizeTooLargeError(f"{size} bytes")


async def test_a_dead_letter_refused_as_too_large_is_written_without_its_value() -> None:
    """One refusal, then the reduced form: headers and key kept, value dropped and its length named; never a loop."""
    producer = SizeLimitedProducer(limit=2000)
    message = _message()
    message.value = b"x" * 5000
    writer = DeadLetterWriter(producer, "events.dlq", FullJitterBackoff(initial=0.001, maximum=0.002))
    assert await asyncio.wait_for(writer.write(message, "unibo", "invalid_json", "not JSON"), 5) is True
    assert len(producer.attempts) == 2
    written = producer.attempts[-1]
    assert written["value"] == b""
    assert written["key"] == b"p1"
    assert written["headers"][VALUE_DROPPED_HEADER] == b"5000"
    assert written["headers"]["gateway-source"] == b"events/2/41"
    assert written["headers"]["gateway-reason"] == b"invalid_json"
    assert written["headers"]["trace"] == b"abc"


async def test_oversized_own_headers_are_dropped_last_and_a_fitting_dead_letter_is_not_reduced() -> None:
    """When the producer's own headers alone are too large, only the gateway's headers remain; small ones go whole."""
    producer = SizeLimitedProducer(limit=2000)
    message = _message()
    message.headers = [("trace", b"y" * 5000)]
    writer = DeadLetterWriter(producer, "events.dlq", FullJitterBackoff(initial=0.001, maximum=0.002))
    assert await asyncio.wait_for(writer.write(message, "unibo", "rejected", "bad", 422), 5) is True
    written = producer.attempts[-1]
    assert len(producer.attempts) == 3
    assert "trace" not in written["headers"] and written["key"] is None
    assert written["headers"][VALUE_DROPPED_HEADER] == b"4"
    assert written["headers"]["gateway-source"] == b"events/2/41"
    assert await writer.write(_message(), "unibo", "rejected", "bad", 422) is False
    assert producer.attempts[-1]["value"] == b"\x00raw"


def test_a_reduced_dead_letter_that_fails_its_replay_stays_marked() -> None:
    """A replay re-dead-letters a reduced record with the drop marker and the source still on it."""
    message = _message()
    message.value = b""
    message.headers = [("gateway-source", b"events/2/41"), (VALUE_DROPPED_HEADER, b"5000")]
    headers = dict(failed_again_headers(message, "invalid_json", "empty", None))
    assert headers[VALUE_DROPPED_HEADER] == b"5000"
    assert headers["gateway-source"] == b"events/2/41"
