"""End-to-end: a mixed stream through Kafka reaches the Unibo sandbox exactly as expected."""

from __future__ import annotations

from gateway.testbed.broker import EmbeddedBroker
from gateway.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    committed,
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)


async def test_mixed_stream_delivers_exactly_the_expected_unique_ids(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Every event Unibo takes arrives once under its unique_id; the rest is filtered; offsets reach the end."""
    events = list(Traffic(seed=11, players=200).stream(3000))
    expected = {event["event_id"] for event in events if unibo_takes(event)}
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 60, "all events at the sandbox")
        await wait_for(
            lambda: (
                gateway.value("gateway_in_flight_events", destination="unibo") == 0
                and gateway.value("gateway_events_filtered_total", destination="unibo")
                + gateway.value("gateway_events_delivered_total", destination="unibo", type="gameround")
                > 0
            ),
            30,
            "settlement",
        )
    assert set(unibo.sandbox.unique_ids("default")) == expected
    assert unibo.sandbox.tenant("default").duplicates == 0
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=2) == []
