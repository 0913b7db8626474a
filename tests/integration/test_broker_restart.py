"""Broker outages: the persistent test broker goes down and comes back; the gateway resumes, loses nothing, says so."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    GatewayProcess,
    committed,
    gateway_config,
    http_get,
    metric_value,
    produce,
    running_gateway,
    unibo_destination,
    wait_for,
    write_config,
)

OUTAGE_S = 15.0


@pytest.fixture
async def persistent() -> AsyncIterator[EmbeddedBroker]:
    """A broker of its own that keeps its data in a local S3 server, so it can be stopped and restarted."""
    async with EmbeddedBroker(persistent=True) as broker:
        await broker.create_topic("events", partitions=3)
        await broker.create_topic("events.dlq", partitions=1)
        yield broker


async def test_the_persistent_broker_keeps_records_and_offsets_across_a_restart(persistent: EmbeddedBroker) -> None:
    """Records, topics and a group's committed offset are all there after down() and up() on the same port."""
    produced = await produce(persistent.bootstrap_servers, "events", [b"a", b"b", b"c"], key=b"k")
    partition = produced[0][0]
    consumer = AIOKafkaConsumer(bootstrap_servers=persistent.bootstrap_servers, group_id="g", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition("events", partition)])
        await consumer.commit({TopicPartition("events", partition): 2})
    finally:
        await consumer.stop()
    port = persistent.port
    await asyncio.to_thread(persistent.down)
    assert not persistent.running
    await asyncio.to_thread(persistent.up)
    assert persistent.running and persistent.port == port
    assert (await committed(persistent.bootstrap_servers, "g", "events"))[partition] == 2
    more = await produce(persistent.bootstrap_servers, "events", [b"d"], key=b"k")
    assert more == [(partition, 3)]


async def _ready(url: str) -> bool:
    status, _ = await http_get(url)
    return status == 200


@pytest.mark.chaos
async def test_a_broker_down_mid_stream_for_15s_is_survived_without_loss(
    persistent: EmbeddedBroker, unibo: RunningSandbox
) -> None:
    """The broker stops for 15 s while events stream: the gateway keeps running, turns not ready while it lost the
    broker, resumes by itself, every event reaches the vendor, and re-sends are counted as duplicates."""
    events = list(Traffic(seed=41, players=300, prefix="outage").stream(6000))
    first, second = events[:3000], events[3000:]
    expected = {event["event_id"] for event in events if unibo_takes(event)}
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=0.2))  # keeps batches in flight when the broker goes
    tree = gateway_config(persistent.bootstrap_servers, "events", [unibo_destination(unibo.url)])
    tree["kafka"]["group_prefix"] = "gw-outage"
    async with running_gateway(tree) as gateway:
        assert gateway.gateway.http is not None
        readyz = f"{gateway.gateway.http.url}/readyz"
        await produce(persistent.bootstrap_servers, "events", first)
        await wait_for(lambda: unibo.sandbox.total_unique >= 300, 60, "delivery under way")
        await asyncio.to_thread(persistent.down)
        down_at = time.monotonic()
        await wait_for(lambda: _not_ready(readyz), OUTAGE_S, "/readyz to say the broker is lost")
        _, body = await http_get(readyz)
        assert "kafka_unreachable" in body
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert not gateway.task.done()
        unibo.sandbox.faults.clear()
        await asyncio.to_thread(persistent.up)
        await produce(persistent.bootstrap_servers, "events", second)
        await wait_for(lambda: _ready(readyz), 60, "ready again after the broker came back")
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 120, "every event at the vendor")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
        duplicates = gateway.value("gateway_events_duplicate_total", destination="unibo")
    assert set(unibo.sandbox.unique_ids("default")) == expected
    assert duplicates == unibo.sandbox.tenant("default").duplicates
    offsets = await committed(persistent.bootstrap_servers, "gw-outage.unibo", "events")
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def _not_ready(url: str) -> bool:
    status, _ = await http_get(url)
    return status == 503


@pytest.mark.chaos
async def test_sigterm_while_the_broker_is_down_exits_within_the_grace_period(
    persistent: EmbeddedBroker, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """With the broker gone and batches settling during the drain, SIGTERM still ends the process within grace + a
    few seconds (the final commit and leaving the group are time-limited); a restart then delivers every event."""
    events = [event for event in Traffic(seed=43, players=100, prefix="term").stream(1500) if unibo_takes(event)]
    grace = 3.0
    port = free_port()
    # One lane: 50 events a second, so the 1,320 events take 26 s and the shutdown always leaves work for the restart
    # (with 4 lanes, 200 a second, a slow broker stop under load once let the drain deliver them all).
    destination = unibo_destination(unibo.url, concurrency=1, batch={"max_events": 50, "linger_ms": 50})
    tree = gateway_config(persistent.bootstrap_servers, "events", [destination], http_port=port, grace=grace)
    tree["kafka"]["group_prefix"] = "gw-term"
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=1.0))  # batches settle one a second: the drain commits
    try:
        process.start()
        await wait_for(lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 60, "the gateway process to be ready")
        await produce(persistent.bootstrap_servers, "events", events)

        async def consumed() -> bool:
            _, text = await http_get(f"http://127.0.0.1:{port}/metrics")
            return (metric_value(text, "gateway_events_consumed_total", destination="unibo") or 0) >= len(events)

        await wait_for(consumed, 30, "every event consumed")
        await asyncio.to_thread(persistent.down)
        process.signal(signal.SIGTERM)
        assert await process.wait(grace + 8) == 0
        assert unibo.sandbox.total_unique < len(events)  # the shutdown left work for the restart
        await asyncio.to_thread(persistent.up)
        unibo.sandbox.faults.clear()
        process.start()
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 90, "delivery after the restart")
        await wait_for(lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 60, "the restarted process to be ready")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        process.stop()
    assert set(unibo.sandbox.unique_ids("default")) == {event["event_id"] for event in events}
    assert "pipeline stopped" in process.output()
