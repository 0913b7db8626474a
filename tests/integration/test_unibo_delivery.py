"""End-to-end: a mixed stream through Kafka reaches the Unibo sandbox exactly as expected."""

from __future__ import annotations

from typing import Any

import orjson

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
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


def _round(index: int, currency: str, amount: str, kind: str = "bet") -> dict[str, Any]:
    return {"event_id": f"cur-{index}", "type": "gameround", "occurred_at": "2026-03-01T12:00:00Z",
            "player_id": f"p-{index}", "round_id": f"r-{index}", "game_id": "g", "kind": kind, "amount": amount,
            "currency": currency}  # fmt: skip


async def test_crypto_unless_mapped_is_dead_lettered_and_zero_wins_are_not_sent(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Through Kafka to the sandbox (which checks ISO-4217 and positive amounts as Unibo documents): USDT mapped by
    `currency_map` arrives as USD, unmapped tickers go to the DLQ as unsupported_currency, a zero win is filtered,
    and every offset is committed."""
    sent = [_round(0, "EUR", "2.5"), _round(1, "USDT", "10"), _round(2, "EUR", "1", "win")]
    crypto = [_round(3, "BTC", "0.001"), _round(4, "ETH", "0.5", "win")]
    zero = [_round(5, "EUR", "0", "win"), _round(6, "BTC", "0.00", "win")]
    events = [*sent, *crypto, *zero]
    unibo.sandbox.keep_payloads = True
    await produce(broker.bootstrap_servers, topic, events)
    destination = unibo_destination(unibo.url, options={"currency_map": {"USDT": "USD"}})
    async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])) as gateway:
        await wait_for(lambda: unibo.sandbox.total_unique >= len(sent), 30, "deliveries")
        dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=len(crypto), timeout=20)
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 20, "settled")
        assert gateway.value("gateway_events_filtered_total", destination="unibo") == len(zero)
    assert set(unibo.sandbox.unique_ids("default")) == {event["event_id"] for event in sent}
    assert unibo.sandbox.tenant("default").payloads["cur-1"]["data"]["currency"] == "USD"
    assert sorted(d.headers["gateway-reason"] for d in dead) == ["unsupported_currency"] * len(crypto)
    assert sorted(d.value for d in dead) == sorted(orjson.dumps(event) for event in crypto)
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
