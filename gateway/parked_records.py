"""The parking topic's record format: the source message as it was, plus headers naming its origin and its brand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TENANT_HEADER = "gateway-parked-tenant"
SOURCE_HEADER = "gateway-parked-source"
PARKED_AT_HEADER = "gateway-parked-at"
DESTINATION_HEADER = "gateway-parked-destination"
_OWN = (TENANT_HEADER, SOURCE_HEADER, PARKED_AT_HEADER, DESTINATION_HEADER)


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


def parked_headers(message: Any, destination: str, tenant: str) -> list[tuple[str, bytes]]:
    """The source message's own headers, then the parking headers (docs/parking.md)."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    own = [(key, value) for key, value in (message.headers or ()) if key not in _OWN]
    return [
        *own,
        (DESTINATION_HEADER, destination.encode()),
        (TENANT_HEADER, tenant.encode()),
        (SOURCE_HEADER, f"{message.topic}/{message.partition}/{message.offset}".encode()),
        (PARKED_AT_HEADER, when.encode()),
    ]


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
    if source is not None:
        name, _, rest = source.rpartition("/")
        topic_part, _, partition_part = name.rpartition("/")
        if topic_part and partition_part.isdigit() and rest.isdigit():
            topic, partition, offset = topic_part, int(partition_part), int(rest)
    return ParkedMessage(topic, partition, offset, record.key, record.value, tuple(own))
