"""Small builders shared by unit tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from gateway import binding
from gateway.batcher import Item
from gateway.connector import VendorRecord
from gateway.delivery import DeliveryEngine, Tenant
from gateway.destination import ResolvedConfig
from gateway.load import Bound, Load
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offsets import PartitionOffsets
from gateway.parking import Parking
from gateway.parking_order import SourcePositions
from tests.integration.harness import gateway_config, unibo_destination

BRANDS = ("casino-a", "casino-b")

OPEN_ENGINES: list[DeliveryEngine] = []
"""Delivery engines a test built, closed after it (tests/unit/conftest.py)."""


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


def two_brand_config(**destination: Any) -> ResolvedConfig:
    """A Unibo destination with brands casino-a and casino-b (parking applies), with `destination`'s keys on top
    (a section given as a mapping is merged into the default one)."""
    tree = unibo_destination("http://vendor.test")
    tree["credentials"] = {brand: {"api_key": f"key-{brand}"} for brand in BRANDS}
    for key, value in destination.items():
        default = tree.get(key)
        tree[key] = {**default, **value} if isinstance(default, dict) and isinstance(value, dict) else value
    return binding.parse(gateway_config("localhost:9092", "events", [tree]), env={})


def make_parking(config: ResolvedConfig, source: SourcePositions) -> Parking:
    """The parking of `config`'s first destination, with no-op callbacks and nothing held in its lanes."""
    destination = config.destinations[0]
    tenants = {name: Tenant(name, None) for name in destination.credentials}
    return Parking(
        destination,
        config.gateway.kafka,
        tenants,
        {name: Bound(100, 1 << 20) for name in tenants},
        {name: Load() for name in tenants},
        DestinationMetrics(Metrics(CollectorRegistry()), destination.name),
        lambda tracker, offset, message: None,
        lambda tracker, offset, message, reason, detail: None,
        lambda: None,
        lambda: False,
        lambda tenant: [],
        source,
    )
