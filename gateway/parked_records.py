"""The parking topic's record format: the source message as it was, plus headers naming its origin and its brand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TENANT_HEADER = "gateway-parked-tenant"
SOURCE_HEADER = "gateway-parked-source"
PARKED_AT_HEADER = "gateway-parked-at"
DESTINATION_HEADER = "gateway-parked-destination"
AFTER_HEADER = "gateway-parked-after"
"""Set when the process that parked the record still held older records of its brand from the same source partition
(in its lanes or per-player deliveries): "<their highest source offset> <the token of that process's tracking of the
partition>". A reader elsewhere (or after a restart) delivers the record only once that offset is settled."""
_OWN = (TENANT_HEADER, SOURCE_HEADER, PARKED_AT_HEADER, DESTINATION_HEADER, AFTER_HEADER)


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A parked event read back, shaped like the source ConsumerRecord it was (topic, partition and offset are the
    source's, so a dead letter of it names where it really came from)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def parked_headers(
    message: Any, destination: str, tenant: str, after: tuple[int, str] | None = None
) -> list[tuple[str, bytes]]:
    """The source message's own headers, then the parking headers (docs/parking.md); `after` is the highest source
    offset of the same partition and brand the parking process still holds unsettled, and its tracker's token."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    own = [(key, value) for key, value in (message.headers or ()) if key not in _OWN]
    headers = [
        *own,
        (DESTINATION_HEADER, destination.encode()),
        (TENANT_HEADER, tenant.encode()),
        (SOURCE_HEADER, f"{message.topic}/{message.partition}/{message.offset}".encode()),
        (PARKED_AT_HEADER, when.encode()),
    ]
    if after is not None:
        headers.append((AFTER_HEADER, f"{after[0]} {after[1]}".encode()))
    return headers


@dataclass(frozen=True, slots=True)
class OrderAfter:
    """A parked record's wait (AFTER_HEADER): source offsets up to `offset` of `topic`/`partition` settle first,
    unless the reader is the tracking (`token`) that held them, whose lanes keep the order."""

    topic: str
    partition: int
    offset: int
    token: str


def order_after(record: Any) -> OrderAfter | None:
    """What a parking-topic record waits for before delivery, or None (no wait, or headers that cannot be read)."""
    after = source = None
    for key, value in record.headers or ():
        if key == AFTER_HEADER:
            after = bytes(value).decode("ascii", "replace")
        elif key == SOURCE_HEADER:
            source = bytes(value).decode("utf-8", "replace")
    if after is None or source is None:
        return None
    offset, _, token = after.partition(" ")
    coordinates = _source(source)
    if coordinates is None or not (offset.isdigit() and offset.isascii()):
        return None
    return OrderAfter(coordinates[0], coordinates[1], int(offset), token)


def _source(text: str) -> tuple[str, int, int] | None:
    name, _, offset = text.rpartition("/")
    topic, _, partition = name.rpartition("/")
    if topic and partition.isdigit() and offset.isdigit():
        return topic, int(partition), int(offset)
    return None


def tenant_of(record: Any) -> str | None:
    """The brand a parking-topic record was parked for (None: not a parked record)."""
    for key, value in record.headers or ():
        if key == TENANT_HEADER:
            return bytes(value).decode("utf-8", "replace")
    return None


def unparked(record: Any) -> ParkedMessage:
    """The source message a parking-topic record carries (its coordinates from the source header when readable)."""
    own: list[tuple[str, bytes]] = []
    source = None
    for key, value in record.headers or ():
        if key == SOURCE_HEADER:
            source = bytes(value).decode("utf-8", "replace")
        elif key not in _OWN:
            own.append((key, value))
    topic, partition, offset = record.topic, record.partition, record.offset
    coordinates = _source(source) if source is not None else None
    if coordinates is not None:
        topic, partition, offset = coordinates
    return ParkedMessage(topic, partition, offset, record.key, record.value, tuple(own))
