"""The gateway as an operator runs it: a real process killed, terminated, scraped, and its logs read."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import UNIBO_KEY, RunningSandbox
from tests.integration.harness import (
    GatewayProcess,
    committed,
    gateway_config,
    http_get,
    metric_value,
    produce,
    read_topic,
    unibo_destination,
    wait_for,
    write_config,
)


def _process(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, url: str, grace: float = 10.0, **destination: Any
) -> GatewayProcess:
    port = free_port()
    tree = gateway_config(
        broker.bootstrap_servers, topic, [unibo_destination(url, **destination)], http_port=port, grace=grace
    )
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    process.http_port = port  # type: ignore[attr-defined]
    return process


async def _ready(process: GatewayProcess) -> None:
    port = process.http_port  # type: ignore[attr-defined]
    await wait_for(lambda: _is_ready(port), 60, "the gateway process to be ready")


async def _is_ready(port: int) -> bool:
    status, _ = await http_get(f"http://127.0.0.1:{port}/readyz")
    return status == 200


@pytest.mark.chaos
async def test_sigkill_mid_stream_loses_nothing(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """SIGKILL the gateway several times while events stream in; after restarts every unique_id is at the vendor."""
    events = list(Traffic(seed=21, players=500, prefix="kill").stream(12_000))
    expected = {e["event_id"] for e in events if unibo_takes(e)}
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=0.3))  # keeps batches in flight when the kill lands
    process = _process(tmp_path, broker, topic, unibo.url, batch={"max_events": 300, "linger_ms": 100})
    producer = asyncio.create_task(_produce_slowly(broker, topic, events))
    try:
        for _ in range(3):
            process.start()
            await _ready(process)
            await wait_for(lambda: unibo.sandbox.total_unique > 0, 30, "some deliveries")
            await asyncio.sleep(1.0)
            process.signal(signal.SIGKILL)
            assert await process.wait(10) == -signal.SIGKILL
        await producer
        process.start()
        await _ready(process)
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 120, "every event after the kills")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        producer.cancel()
        process.stop()
    received = set(unibo.sandbox.unique_ids("default"))
    assert expected - received == set(), f"missing {len(expected - received)}"
    assert received == expected
    duplicates = unibo.sandbox.tenant("default").duplicates
    print(f"\nSIGKILL x3: {len(expected)} delivered, {duplicates} duplicates re-sent (dropped by unique_id)")


async def _produce_slowly(broker: EmbeddedBroker, topic: str, events: list[dict[str, object]]) -> None:
    for start in range(0, len(events), 500):
        await produce(broker.bootstrap_servers, topic, events[start : start + 500])
        await asyncio.sleep(0.4)


async def test_sigterm_drains_in_flight_commits_and_exits_zero(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """SIGTERM under load: batches in flight finish, offsets are committed to the end, and the exit code is 0."""
    events = list(Traffic(seed=22, players=300, prefix="term").stream(3000))
    expected = {e["event_id"] for e in events if unibo_takes(e)}
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=1.0))
    process = _process(tmp_path, broker, topic, unibo.url, batch={"max_events": 200, "linger_ms": 2000})
    try:
        process.start()
        await _ready(process)
        await produce(broker.bootstrap_servers, topic, events)
        port = process.http_port  # type: ignore[attr-defined]

        async def all_consumed() -> bool:
            _, text = await http_get(f"http://127.0.0.1:{port}/metrics")
            return (metric_value(text, "gateway_events_consumed_total", destination="unibo") or 0) >= len(events)

        await wait_for(all_consumed, 30, "every event consumed")
        assert unibo.sandbox.total_unique < len(expected)  # still in flight (slow vendor, long linger)
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        process.stop()
    assert set(unibo.sandbox.unique_ids("default")) == expected
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
    assert '"draining"' in process.output() or "draining" in process.output()


async def test_secrets_never_reach_logs_metrics_or_errors(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """The vendor key never appears in logs, /metrics or the DLQ, through a 403 halt, rejects and recovery."""
    secret = "sk-live-7Hq2ZpXv9NwK4tLm"
    unibo.sandbox.set_keys({"another-key": "default"})
    events = [e for e in Traffic(seed=23, players=50, prefix="sec").stream(300) if unibo_takes(e)]
    unibo.sandbox.set_fail_items({events[3]["event_id"]})
    await produce(broker.bootstrap_servers, topic, events)
    await produce(broker.bootstrap_servers, topic, [f'{{"api_key": "{secret}"'.encode()], key=b"p1")
    process = _process(tmp_path, broker, topic, unibo.url, key=secret)
    port = free_port()
    try:
        process.start()
        await wait_for(lambda: unibo.sandbox.stats.auth_failures >= 2, 60, "403 answers")
        _, metrics_text = await http_get(f"http://127.0.0.1:{process.http_port}/metrics")  # type: ignore[attr-defined]
        unibo.sandbox.set_keys({secret: "default"})
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events) - 1, 60, "delivery after the fix")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        process.stop()
    logs = process.output()
    assert "tenant halted" in logs
    assert "dead-lettered" in logs
    assert secret not in logs
    assert secret not in metrics_text
    assert "gateway_destination_up" in metrics_text
    dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=2, timeout=20)
    assert all(secret not in record.headers["gateway-error"] for record in dead)
    assert port > 0
    assert UNIBO_KEY not in logs


async def test_sigterm_with_the_vendor_hanging_exits_in_grace_and_commits_nothing_undelivered(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """If in-flight batches cannot finish within the grace period, the gateway still exits 0, commits nothing past
    them, and a restart delivers every event."""
    events = [e for e in Traffic(seed=24, players=100, prefix="grace").stream(800) if unibo_takes(e)]
    unibo.sandbox.faults.add(FaultPlan(kind="hang"))
    process = _process(tmp_path, broker, topic, unibo.url, grace=2.0, timeout=30.0)
    port = process.http_port  # type: ignore[attr-defined]
    try:
        process.start()
        await _ready(process)
        await produce(broker.bootstrap_servers, topic, events)

        async def all_consumed() -> bool:
            _, text = await http_get(f"http://127.0.0.1:{port}/metrics")
            return (metric_value(text, "gateway_events_consumed_total", destination="unibo") or 0) >= len(events)

        await wait_for(all_consumed, 30, "every event consumed")
        process.signal(signal.SIGTERM)
        assert await process.wait(20) == 0
        offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
        assert all(offset in (None, 0) for offset in offsets.values())
        assert unibo.sandbox.total_unique == 0
        unibo.sandbox.faults.clear()
        process.start()
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery after the restart")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        process.stop()
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
