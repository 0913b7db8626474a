"""A destination draining a backlog gives the event loop back after every poll, so nothing else waits out its drain."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import gateway_config, produce, running_gateway, unibo_destination, wait_for


async def test_every_poll_of_a_backlog_lets_the_other_tasks_run(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka's getmany returns records it fetched ahead without suspending, so a consume loop that only awaits
    it holds the loop for as long as the prefetched records last: a backlog's first 20,000 records, 230-250 ms of
    decoding and mapping on the bench (bench/unibo_pipeline.py), while the other destinations' sends, the listener's
    probes and the Enable3 callbacks waited. Here a task that runs at every turn of the loop must have run between
    any two polls that returned records."""
    events = [event for event in Traffic(seed=23, players=500).stream(30_000) if unibo_takes(event)]
    assert len(events) > 15_000  # several polls' worth, fetched ahead in a few fetches
    await produce(broker.bootstrap_servers, topic, events)
    turns = 0
    polls: dict[int, list[int]] = defaultdict(list)  # the probe's turn count at each poll that returned records
    getmany = AIOKafkaConsumer.getmany

    async def counted(self: AIOKafkaConsumer, *partitions: Any, **options: Any) -> Any:
        batches = await getmany(self, *partitions, **options)
        if batches:
            polls[id(self)].append(turns)
        return batches

    async def probe() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", counted)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    probing = asyncio.create_task(probe())  # turning before the gateway reads anything
    try:
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 90, "the backlog at the sandbox")
            await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
    finally:
        probing.cancel()
    assert unibo.sandbox.tenant("default").duplicates == 0
    (seen,) = polls.values()  # the pipeline's consumer (the harness's own read nothing meanwhile)
    assert len(seen) >= 5, seen
    held = [i for i in range(1, len(seen)) if seen[i] == seen[i - 1]]
    assert held == [], f"{len(held)} of {len(seen)} polls followed the one before without a turn of the loop"
