"""A destination draining a backlog gives the event loop back after every poll, so nothing else waits out its drain."""

from __future__ import annotations

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    gateway_config,
    loop_turns_at_polls,
    polls_without_a_turn,
    produce,
    running_gateway,
    unibo_destination,
    wait_for,
)


async def test_every_poll_of_a_backlog_lets_the_other_tasks_run(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """aiokafka's getmany returns records it fetched ahead without suspending, so a consume loop that only awaits
    it holds the loop for as long as the prefetched records last: a backlog's first 20,000 records, 230-250 ms of
    decoding and mapping on the bench (bench/unibo_pipeline.py), while the other destinations' sends, the listener's
    probes and the Enable3 callbacks waited. Here a task that runs at every turn of the loop must have run between
    any two polls that returned records."""
    events = [event for event in Traffic(seed=23, players=500).stream(30_000) if unibo_takes(event)]
    assert len(events) > 15_000  # several polls' worth, fetched ahead in a few fetches
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with loop_turns_at_polls() as polls, running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 90, "the backlog at the sandbox")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
    assert unibo.sandbox.tenant("default").duplicates == 0
    count, held = polls_without_a_turn(polls)  # the pipeline's consumer: the harness's own read nothing meanwhile
    assert count >= 5, polls
    assert held == [], f"{len(held)} of {count} polls followed the one before without a turn of the loop"
