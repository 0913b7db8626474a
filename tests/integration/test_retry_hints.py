"""A vendor's retry hints against the real sandbox: `Retry-After: 0` never makes a hot loop, and nothing is lost."""

from __future__ import annotations

import asyncio
import time

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import gateway_config, produce, running_gateway, unibo_destination, wait_for

INITIAL = 0.25


async def test_retry_after_zero_waits_at_least_initial_between_sends(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """A vendor answering 429 with `Retry-After: 0` gets at most one send per `retry.initial` per lane (today's
    reproduction: hundreds per second), and every event is delivered once it stops."""
    events = [e for e in Traffic(seed=21, players=20, prefix="ra0").stream(120) if unibo_takes(e)]
    unibo.sandbox.faults.add(FaultPlan(kind="rate_limit", retry_after=0))
    await produce(broker.bootstrap_servers, topic, events)
    destination = unibo_destination(
        unibo.url,
        concurrency=1,
        batch={"max_events": 1000, "linger_ms": 0},
        retry={"initial": INITIAL, "max": 1.0, "retry_after_cap": 5.0, "halt_probe": 0.5},
    )
    async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])):
        await wait_for(lambda: unibo.sandbox.faults.total_injected >= 1, 30, "the first 429")
        started, before = time.monotonic(), unibo.sandbox.faults.total_injected
        await asyncio.sleep(2.0)
        sends = unibo.sandbox.faults.total_injected - before
        elapsed = time.monotonic() - started
        unibo.sandbox.faults.clear()
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 30, "delivery once the 429s stop")
    # A count bound, not a speed one: each of the lane's sends waits at least INITIAL after the previous answer.
    assert sends <= elapsed / INITIAL + 1
    assert unibo.sandbox.total_unique == len(events)
    assert unibo.sandbox.tenant("default").duplicates == 0
