"""Adaptive request timeouts end to end: a hung vendor request is cut by the adaptive deadline, not the 10 s cap."""

from __future__ import annotations

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic
from tests.integration.enable3_support import (
    RunningEnable3,
    enable3,  # noqa: F401 - the fixture
    enable3_destination,
    mission_ids,
)
from tests.integration.harness import committed, gateway_config, produce, read_topic, running_gateway, wait_for


async def test_a_hung_request_is_cut_by_the_adaptive_deadline_and_retried_without_loss(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """With the default 10 s timeout and adaptive_timeout at its defaults: once enough answers were seen, the
    effective timeout is below the cap, and a request the vendor reads but never answers is cut by it (counted as an
    `adaptive` timeout, none by the cap), retried, and every event arrives once; offsets reach the end."""
    warm_up = list(Traffic(seed=41, players=40, prefix="warm").stream(400))
    later = list(Traffic(seed=42, players=40, prefix="later").stream(200))
    expected = mission_ids(warm_up + later)
    assert len(mission_ids(warm_up)) >= 150  # well past min_samples (20) and a refresh of the percentile
    destination = enable3_destination(enable3.url, timeout=10.0)
    async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])) as gateway:
        tenant = enable3.sandbox.tenant
        await produce(broker.bootstrap_servers, topic, warm_up)
        await wait_for(lambda: len(tenant("default").events) >= len(mission_ids(warm_up)), 60, "the warm-up")
        effective = gateway.value("gateway_http_request_timeout_seconds", destination="enable3")
        assert 0 < effective < 10.0  # adapted: the sandbox answers in milliseconds, so the floor (2 s) or near it
        enable3.sandbox.faults.add(FaultPlan(kind="hang", count=1))
        await produce(broker.bootstrap_servers, topic, later)
        await wait_for(lambda: len(tenant("default").events) >= len(expected), 60, "every event at Enable3")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 30, "settled")
        adaptive = gateway.value("gateway_http_timeouts_total", destination="enable3", deadline="adaptive")
        capped = gateway.value("gateway_http_timeouts_total", destination="enable3", deadline="cap")
        retried = gateway.value("gateway_delivery_retries_total", destination="enable3", reason="timeout")
    assert enable3.sandbox.faults.injected["hang"] == 1
    assert (adaptive >= 1, capped, retried >= 1) == (True, 0, True)
    assert sorted(tenant("default").events) == sorted(expected)  # the hung record too, once: nothing lost
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.enable3", topic)
    assert sum(o or 0 for o in offsets.values()) == len(warm_up) + len(later)
