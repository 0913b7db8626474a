"""Where a new destination starts reading (`start_from`), on the real broker; a committed group never moves."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import message
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import committed, gateway_config, running_gateway, unibo_destination, wait_for

HOUR_MS = 3_600_000


def logins(prefix: str, count: int) -> list[dict[str, Any]]:
    """Login events (Unibo takes every one) over 12 players."""
    return [
        {
            "event_id": f"{prefix}-{index}",
            "type": "login",
            "occurred_at": "2026-12-01T10:00:00Z",
            "player_id": f"player-{index % 12}",
        }
        for index in range(count)
    ]


async def produce_at(bootstrap: str, topic: str, events: list[dict[str, Any]], timestamp_ms: int) -> None:
    """Produce `events` with the record timestamp `timestamp_ms` (what offsets_for_times searches)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in events:
            key, value = message(event)
            await producer.send_and_wait(topic, value, key=key, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


def rfc3339(timestamp_ms: int) -> str:
    """A record timestamp as RFC 3339 UTC."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()


async def test_start_from_a_time_skips_older_records_only_for_a_new_group(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """A new group starts at the first record at or after start_from; once it has committed, it resumes instead."""
    now_ms = int(time.time() * 1000)
    old, new = logins("old", 60), logins("new", 60)
    await produce_at(broker.bootstrap_servers, topic, old, now_ms - 2 * HOUR_MS)
    await produce_at(broker.bootstrap_servers, topic, new, now_ms)
    start_from = rfc3339(now_ms - HOUR_MS)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url, start_from=start_from)])
    async with running_gateway(tree):
        await wait_for(lambda: unibo.sandbox.total_unique >= len(new), 30, "the recent records")
    # Old records precede the new ones in every partition: had the group started earlier, they would be here too.
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in new}
    group = f"gw-{topic}.unibo"
    assert all(offset is not None for offset in (await committed(broker.bootstrap_servers, group, topic)).values())

    # Records older than start_from, produced after the group committed, are read: start_from never moves a group.
    late = logins("late", 30)
    await produce_at(broker.bootstrap_servers, topic, late, now_ms - 2 * HOUR_MS)
    async with running_gateway(tree):
        await wait_for(lambda: unibo.sandbox.total_unique >= len(new) + len(late), 30, "the late records")
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in new + late}


async def test_start_from_latest_overrides_the_kafka_default_for_one_destination(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """kafka.auto_offset_reset is earliest; a destination with start_from: latest skips the existing backlog."""
    backlog = logins("backlog", 60)
    await produce_at(broker.bootstrap_servers, topic, backlog, int(time.time() * 1000))
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url, start_from="latest")])
    assert tree["kafka"].get("auto_offset_reset", "earliest") == "earliest"
    fresh = logins("fresh", 60)
    async with running_gateway(tree):
        await produce_at(broker.bootstrap_servers, topic, fresh, int(time.time() * 1000))
        await wait_for(lambda: unibo.sandbox.total_unique >= len(fresh), 30, "the records produced after joining")
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in fresh}
