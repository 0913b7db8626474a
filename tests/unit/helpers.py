"""Small builders shared by unit tests."""

from __future__ import annotations

from types import SimpleNamespace

from gateway.batcher import Item
from gateway.connector import VendorRecord
from gateway.offsets import PartitionOffsets


def make_item(index: int, offsets: PartitionOffsets | None = None, size: int = 10, key: str = "p1") -> Item:
    """An item for offset `index` whose record body is `size` bytes."""
    tracker = offsets if offsets is not None else PartitionOffsets()
    body = (str(index).encode() + b" " * size)[:size]
    message = SimpleNamespace(topic="t", partition=0, offset=index, key=key.encode(), value=b"{}", headers=[])
    return Item(
        record=VendorRecord(route="events", body=body, key=key, record_id=f"id-{index}"),
        offsets=tracker,
        offset=index,
        event_type="deposit",
        consumed_at=0.0,
        occurred_at=0.0,
        message=message,
    )
