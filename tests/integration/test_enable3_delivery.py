"""Enable3 end to end: a mixed stream, per-player order under concurrency, revenue currencies, segment templates."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

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


async def test_mixed_stream_ends_with_exactly_the_expected_ids_in_player_order(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """Every mission event arrives once under its event_id, each player's in source order across 16 lanes."""
    events = list(Traffic(seed=31, players=60, prefix="mix").stream(3000))
    expected = mission_ids(events)
    revenue = [e["revenue_id"] for e in events if e["type"] == "revenue"]
    segments = [e for e in events if e["type"] == "segment"]
    # Random slow answers let lanes overtake each other, so any per-player reordering would show.
    enable3.sandbox.faults.add(FaultPlan(kind="slow", fraction=0.05, delay=0.03))
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)])
    async with running_gateway(tree) as gateway:
        log = enable3.sandbox.tenant
        await wait_for(
            lambda: len(log("default").events) >= len(expected) and len(log("default").segments) >= len(segments),
            90,
            "all events at the sandbox",
        )
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 30, "settled")
    tenant = enable3.sandbox.tenant("default")
    assert sorted(tenant.events) == sorted(expected) and len(tenant.events) == len(expected)
    assert tenant.duplicates == 0
    by_player: dict[str, list[str]] = defaultdict(list)
    wanted = set(expected)
    for event in events:
        if event["event_id"] in wanted:
            by_player[event["player_id"]].append(event["event_id"])
    assert {player: enable3.sandbox.user_order("default", player) for player in by_player} == by_player
    assert sorted(tenant.revenue) == sorted(revenue)  # the generator's revenue is operator-level USDT
    assert next(body for _, body in tenant.segments if body[0]["userId"] == segments[0]["player_id"]) == [
        {"userId": segments[0]["player_id"], "segment": name} for name in segments[0]["segments"]
    ]  # the default template: one object per segment
    assert sorted(body[0]["userId"] for _, body in tenant.segments) == sorted(e["player_id"] for e in segments)
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.enable3", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=2) == []


def _revenue(index: int, currency: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"rv-{index}",
        "type": "revenue",
        "occurred_at": "2026-11-01T12:00:00+01:00",
        "revenue_id": f"rev-{index}",
        "amount": f"{index}.25",
        "currency": currency,
        **extra,
    }


def _segment(index: int, action: str, names: list[str]) -> dict[str, Any]:
    return {
        "event_id": f"sg-{index}",
        "type": "segment",
        "occurred_at": "2026-11-01T12:00:00Z",
        "player_id": "p-seg",
        "segments": names,
        "action": action,
    }


async def test_revenue_in_usdt_is_delivered_others_dead_lettered_and_a_segment_template_honoured(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """USDT revenue reaches /revenue; EUR revenue goes to the DLQ as unsupported_currency; segments use the template."""
    usdt = [_revenue(i, "USDT") for i in range(3)]
    other = [_revenue(10, "EUR"), _revenue(11, "usdc")]
    segment_events = [_segment(1, "add", ["vip", "whale"]), _segment(2, "remove", ["vip"])]
    await produce(broker.bootstrap_servers, topic, [*usdt, *other, *segment_events])
    template = [{"user": {"operatorUserId": "{userId}"}, "segments": "{segments}", "source": "event-gateway"}]
    destination = enable3_destination(enable3.url, options={"segment_template": template})
    tree = gateway_config(broker.bootstrap_servers, topic, [destination])
    async with running_gateway(tree) as gateway:
        tenant = enable3.sandbox.tenant
        await wait_for(
            lambda: len(tenant("default").revenue) >= 3 and len(tenant("default").segments) >= 2, 30, "deliveries"
        )
        dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=2, timeout=20)
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 20, "settled")
        assert (
            gateway.value("gateway_events_dead_lettered_total", destination="enable3", reason="unsupported_currency")
            == 2
        )
    assert enable3.sandbox.tenant("default").revenue == {"rev-0": 0.25, "rev-1": 1.25, "rev-2": 2.25}
    assert sorted(d.headers["gateway-reason"] for d in dead) == ["unsupported_currency"] * 2
    assert sorted(d.value for d in dead) == sorted(orjson.dumps(event) for event in other)
    assert all("USDT" in d.headers["gateway-error"] for d in dead)
    assert enable3.sandbox.tenant("default").segments == [
        ("add", [{"user": {"operatorUserId": "p-seg"}, "segments": ["vip", "whale"], "source": "event-gateway"}]),
        ("remove", [{"user": {"operatorUserId": "p-seg"}, "segments": ["vip"], "source": "event-gateway"}]),
    ]
