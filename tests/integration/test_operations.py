"""Operations end to end: rebalancing between replicas, backpressure, metrics and probes, logs."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, unibo_takes
from gateway import binding
from gateway import load as load_module
from gateway.app import Gateway
from gateway.delivery import DeliveryEngine
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    committed,
    gateway_config,
    http_get,
    metric_value,
    produce,
    running_gateway,
    unibo_destination,
    wait_for,
)


def _events(count: int, seed: int) -> list[dict[str, Any]]:
    return list(Traffic(seed=seed, players=300, prefix=f"ops{seed}").stream(count))


async def test_two_replicas_share_partitions_and_survive_a_rebalance(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Two replicas split the partitions; when one leaves mid-stream the other takes over and nothing is lost."""
    events = _events(6000, seed=31)
    expected = {e["event_id"] for e in events if unibo_takes(e)}
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=0.05))
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as first:
        async with running_gateway(tree) as second:
            await wait_for(
                lambda: (
                    sum(
                        len(p._consumer.assignment())
                        for g in (first, second)
                        for p in g.gateway.pipelines
                        if p._consumer is not None
                    )
                    == 3
                    and all(p._consumer is not None and p._consumer.assignment() for p in second.gateway.pipelines)
                ),
                60,
                "both replicas to own partitions",
            )
            await produce(broker.bootstrap_servers, topic, events[:3000])
            await wait_for(lambda: unibo.sandbox.total_unique > 200, 30, "some deliveries")
        # The second replica left (drained and committed); the first must take over its partitions.
        await produce(broker.bootstrap_servers, topic, events[3000:])
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 90, "every event after the rebalance")
        await wait_for(lambda: first.value("gateway_in_flight_events", destination="unibo") == 0, 20, "settled")
    assert set(unibo.sandbox.unique_ids("default")) == expected
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


@pytest.mark.parametrize(
    ("count", "max_in_flight", "lanes"),
    [
        pytest.param(4000, 400, 4, id="at-the-bound"),  # consumption pauses at the bound: no batch can fill
        pytest.param(600, 1000, 2, id="past-half"),  # the bound is never reached, but caps the batches past half
    ],
)
async def test_lanes_do_not_linger_from_half_the_in_flight_bound(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, count: int, max_in_flight: int, lanes: int
) -> None:
    """A ten-minute linger and batches of up to 10,000 under a small max_in_flight: past half the bound the bound,
    not max_events, caps the batches, so lingering would only stall the pipeline for the linger. The lanes send what
    they hold instead, and every event arrives, committed, well inside the linger."""
    events = [e for e in _events(count * 2, seed=36) if unibo_takes(e)][:count]
    assert len(events) == count
    await produce(broker.bootstrap_servers, topic, events)
    destination = unibo_destination(
        unibo.url, max_in_flight=max_in_flight, concurrency=lanes, batch={"max_events": 10_000, "linger_ms": 600_000}
    )
    tree = gateway_config(broker.bootstrap_servers, topic, [destination])
    async with running_gateway(tree):
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 120, "every event before the linger")
        # No request carried more than the bound's worth: batches were cut by the bound, not by max_events.
        assert unibo.sandbox.stats.accepted_batches >= len(events) // max_in_flight
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def test_backpressure_bounds_in_flight_and_pauses_consumption(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """With the vendor hanging, consumption stops near max_in_flight; after recovery everything is delivered."""
    events = [e for e in _events(5000, seed=32) if unibo_takes(e)]
    unibo.sandbox.faults.add(FaultPlan(kind="hang"))
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(
        broker.bootstrap_servers, topic, [unibo_destination(unibo.url, max_in_flight=300, timeout=1.0)]
    )
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") >= 300, 30, "the bound")
        await asyncio.sleep(1.5)
        consumed = gateway.value("gateway_events_consumed_total", destination="unibo")
        # A poll is capped at the room left, so the bound is never overshot.
        assert consumed <= 300
        assert gateway.value("gateway_in_flight_events", destination="unibo") <= 300
        await wait_for(
            lambda: gateway.value("gateway_consumer_lag", destination="unibo", topic=topic, partition="0") > 0,
            10,
            "lag to be reported",
        )
        unibo.sandbox.faults.clear()
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery after recovery")
        await wait_for(
            lambda: (
                sum(
                    gateway.value("gateway_consumer_lag", destination="unibo", topic=topic, partition=str(p))
                    for p in range(3)
                )
                == 0
            ),
            20,
            "lag back to zero",
        )
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}


async def test_at_the_bound_consumption_holds_before_it_pauses(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the bound, consumption first holds: no poll, the partitions unpaused, so aiokafka keeps the records it
    prefetched. Pausing at once made it drop them into a reference cycle (its PartitionRecords and their generator)
    that held each fetch buffer until the garbage collector ran. A bound held for HOLD seconds is an outage: the
    partitions are paused then, and resumed once the vendor is back; nothing is lost either way."""
    monkeypatch.setattr(load_module, "HOLD", 3600.0)  # held until the test lowers it: no race with a slow machine
    monkeypatch.setenv("GATEWAY_MALLOC_TUNING", "0")  # no collection rounds: a dropped record set stays to be found
    events = [e for e in _events(5000, seed=37) if unibo_takes(e)]
    unibo.sandbox.faults.add(FaultPlan(kind="hang"))
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(
        broker.bootstrap_servers, topic, [unibo_destination(unibo.url, max_in_flight=300, timeout=1.0)]
    )
    try:
        async with running_gateway(tree) as gateway:
            gc.disable()
            consumer = gateway.gateway.pipelines[0]._consumer
            assert consumer is not None
            await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") >= 300, 30, "bound")
            await asyncio.sleep(1.0)
            assert consumer.paused() == set()  # holding, with thousands of prefetched records waiting
            # A record set aiokafka dropped is a cycle with its generator: alive (the collector is off), but no longer
            # held by a fetch result.
            record_sets = [o for o in gc.get_objects() if isinstance(o, PartitionRecords)]
            dropped = [o for o in record_sets if not any(isinstance(r, FetchResult) for r in gc.get_referrers(o))]
            assert dropped == []
            del record_sets, dropped
            monkeypatch.setattr(load_module, "HOLD", 0.5)  # held longer than HOLD now: an outage
            await wait_for(lambda: consumer.paused() == consumer.assignment(), 10, "the pause after HOLD")
            assert gateway.value("gateway_events_consumed_total", destination="unibo") <= 300
            unibo.sandbox.faults.clear()
            await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery after recovery")
            assert consumer.paused() == set()
    finally:
        gc.enable()
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def test_backpressure_bounds_the_bytes_held(broker: EmbeddedBroker, topic: str, unibo: RunningSandbox) -> None:
    """With the vendor hanging, consumption stops near max_in_flight_bytes although the count bound is far away; the
    gauge reports the bytes held, and after recovery everything is delivered."""
    events = [e for e in _events(3000, seed=34) if unibo_takes(e)]
    unibo.sandbox.faults.add(FaultPlan(kind="hang"))
    await produce(broker.bootstrap_servers, topic, events)
    bound = 64 * 1024
    destination = unibo_destination(unibo.url, max_in_flight=50000, max_in_flight_bytes=bound, timeout=1.0)
    tree = gateway_config(broker.bootstrap_servers, topic, [destination])
    async with running_gateway(tree) as gateway:
        await wait_for(
            lambda: gateway.value("gateway_in_flight_bytes", destination="unibo") >= bound, 30, "the bytes bound"
        )
        await asyncio.sleep(1.5)
        held = gateway.value("gateway_in_flight_bytes", destination="unibo")
        consumed = gateway.value("gateway_events_consumed_total", destination="unibo")
        # A message holds about a kilobyte and a half: a poll is capped at the room left in bytes (by the average
        # message so far), so the bound is overshot by at most one estimate, never by the 3,000 messages waiting.
        assert held <= 2 * bound
        assert consumed <= 2 * bound // 1000
        unibo.sandbox.faults.clear()
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery after recovery")
        await wait_for(lambda: gateway.value("gateway_in_flight_bytes", destination="unibo") == 0, 20, "settled")
    assert set(unibo.sandbox.unique_ids("default")) == {e["event_id"] for e in events}


async def test_metrics_and_probes_are_served(broker: EmbeddedBroker, topic: str, unibo: RunningSandbox) -> None:
    """/healthz, /readyz and /metrics answer, and /metrics carries every contract metric."""
    events = _events(500, seed=33)
    await produce(broker.bootstrap_servers, topic, events)
    await produce(broker.bootstrap_servers, topic, [b"not json"], key=b"k")
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as gateway:
        expected = {e["event_id"] for e in events if unibo_takes(e)}
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 30, "delivery")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 20, "settled")
        await asyncio.sleep(0.7)  # one lag refresh
        assert gateway.gateway.http is not None
        base = gateway.gateway.http.url
        assert (await http_get(f"{base}/healthz"))[0] == 200
        assert (await http_get(f"{base}/readyz"))[0] == 200
        status, text = await http_get(f"{base}/metrics")
    assert status == 200
    contract = [
        "gateway_events_consumed_total",
        "gateway_events_delivered_total",
        "gateway_events_dead_lettered_total",
        "gateway_events_filtered_total",
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds_count",
        "gateway_batch_events_count",
        "gateway_delivery_latency_seconds_count",
        "gateway_consumer_lag",
        "gateway_in_flight_events",
        "gateway_in_flight_bytes",
        "gateway_destination_up",
        "gateway_build_info",
    ]
    for name in contract:
        assert metric_value(text, name) is not None, name
    assert metric_value(text, "gateway_events_consumed_total", destination="unibo") == len(events) + 1
    assert metric_value(text, "gateway_events_dead_lettered_total", destination="unibo", reason="invalid_json") == 1
    delivered = sum(
        metric_value(text, "gateway_events_delivered_total", destination="unibo", type=t) or 0
        for t in ("deposit", "withdrawal", "gameround", "login", "player", "game")
    )
    assert delivered == len(expected)
    assert metric_value(text, "gateway_http_requests_total", destination="unibo", status_class="2xx")
    assert metric_value(text, "gateway_consumer_lag", destination="unibo", topic=topic, partition="0") == 0


async def test_kafka_unreachable_at_startup_is_waited_out(unibo: RunningSandbox) -> None:
    """Started before Kafka exists, the gateway stays alive but not ready, then connects and delivers."""
    port = free_port()
    topic = "late-broker-events"
    tree = gateway_config(f"127.0.0.1:{port}", topic, [unibo_destination(unibo.url)], http_port=free_port())
    gateway = Gateway(binding.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    try:
        await wait_for(lambda: gateway.http is not None, 10, "the probes")
        assert gateway.http is not None
        await asyncio.sleep(1.0)
        assert (await http_get(f"{gateway.http.url}/healthz"))[0] == 200
        status, _ = await http_get(f"{gateway.http.url}/readyz")
        assert status == 503
        assert not task.done()
        async with EmbeddedBroker(port=port) as late:
            # The waiting gateway may subscribe first, and Tansu then auto-creates the topic: either is fine here.
            await late.create_topic(topic, partitions=3, exist_ok=True)
            events = [e for e in _events(300, seed=34) if unibo_takes(e)]
            await produce(late.bootstrap_servers, topic, events)
            await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "delivery once Kafka is up")
            gateway.stop()
            await asyncio.wait_for(task, 60)
    finally:
        gateway.stop()
        if not task.done():
            task.cancel()


async def test_a_rewound_partition_is_tracked_afresh(broker: EmbeddedBroker, topic: str, unibo: RunningSandbox) -> None:
    """If the consumer position jumps back (a reset or lost membership), the pipeline re-tracks and delivers again."""
    events = [e for e in _events(600, seed=35) if unibo_takes(e)]
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 30, "first delivery")
        pipeline = gateway.gateway.pipelines[0]
        consumer = pipeline._consumer
        assert consumer is not None
        for tp in consumer.assignment():
            consumer.seek(tp, 0)
        await wait_for(lambda: unibo.sandbox.tenant("default").duplicates >= len(events), 30, "the replayed events")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 20, "settled")
        assert not gateway.task.done()
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def test_a_broken_lane_fails_the_gateway_loudly_without_committing(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a delivery lane dies (a bug in the core), the gateway stops with an error instead of stalling silently."""
    events = [e for e in _events(200, seed=36) if unibo_takes(e)]
    await produce(broker.bootstrap_servers, topic, events)

    async def broken(self: DeliveryEngine, tenant: object, items: object) -> None:
        raise RuntimeError("simulated core bug")

    monkeypatch.setattr(DeliveryEngine, "deliver", broken)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    gateway = Gateway(binding.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    with pytest.raises(BaseExceptionGroup) as failure:
        await asyncio.wait_for(task, 60)
    assert "simulated core bug" in repr(failure.value.exceptions[0].__cause__)
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert all(offset is None or offset == 0 for offset in offsets.values())
    assert unibo.sandbox.total_unique == 0
