"""A dead letter too large for the dead-letter topic is written reduced; it never blocks its partition."""

from __future__ import annotations

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from gateway.dlq import VALUE_DROPPED_HEADER
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

LIMIT = 64 * 1024


async def test_a_source_message_near_the_limit_is_dead_lettered_without_its_value(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """A message that fits the limit alone but not with the gateway's headers: one reduced dead letter naming it,
    counted; the events behind it in the same partition are delivered and the offsets reach the end.

    Tansu enforces no max.message.bytes, so the limit is the DLQ producer's (`kafka.dlq_max_message_bytes`), which
    refuses with the same MessageSizeTooLargeError a Kafka broker answers MESSAGE_TOO_LARGE with."""
    huge = b"not json " + b"x" * (LIMIT - 200)
    [(partition, offset)] = await produce(broker.bootstrap_servers, topic, [huge], key=b"player-huge")
    events = [dict(event, player_id="player-huge") for event in Traffic(seed=31, players=1).stream(40)]
    expected = {event["event_id"] for event in events if unibo_takes(event)}
    after = await produce(broker.bootstrap_servers, topic, events)
    assert {p for p, _ in after} == {partition}  # the same key: the same partition, behind the big one
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    tree["kafka"]["dlq_max_message_bytes"] = LIMIT
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 60, "the events behind it delivered")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
        assert gateway.value("gateway_dead_letters_reduced_total", destination="unibo") == 1
        assert gateway.value("gateway_events_dead_lettered_total", destination="unibo", reason="invalid_json") == 1
    [letter] = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=1)
    assert letter.value == b""
    assert letter.key == b"player-huge"
    assert letter.headers[VALUE_DROPPED_HEADER] == str(len(huge))
    assert letter.headers["gateway-source"] == f"{topic}/{partition}/{offset}"
    assert letter.headers["gateway-reason"] == "invalid_json"
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert offsets[partition] == offset + 1 + len(events)
