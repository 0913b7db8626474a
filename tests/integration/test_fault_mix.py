"""Per-request vendors under the standard fault mix (5xx, 429, resets, hangs): everything arrives, once, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.faults import standard_fault_mix
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic
from tests.integration.enable3_support import ENABLE3_KEY, enable3_destination, mission_ids
from tests.integration.harness import committed, gateway_config, produce, read_topic, running_gateway, wait_for
from tests.integration.userwise_support import (
    USERWISE_KEY,
    USERWISE_SECRET,
    expected_at_userwise,
    userwise_destination,
)

EVENTS = 6000


@pytest.fixture
async def vendors() -> AsyncIterator[tuple[Enable3Sandbox, str, UserWiseSandbox, str]]:
    """Enable3 and UserWise sandboxes, each with the standard fault mix armed until cleared."""
    enable3 = Enable3Sandbox({ENABLE3_KEY: "default"}, fault_seed=3)
    userwise = UserWiseSandbox({USERWISE_KEY: "default"}, USERWISE_SECRET, fault_seed=4)
    for sandbox in (enable3, userwise):
        for plan in standard_fault_mix():
            sandbox.faults.add(plan)
    async with SandboxServer(enable3.app()) as e3, SandboxServer(userwise.app()) as uw:
        yield enable3, e3.url, userwise, uw.url


@pytest.mark.chaos
async def test_enable3_and_userwise_deliver_everything_under_the_fault_mix(
    broker: EmbeddedBroker, topic: str, vendors: tuple[Enable3Sandbox, str, UserWiseSandbox, str]
) -> None:
    """With 3% 5xx, 2% 429 (Retry-After: 1), 1% resets and 0.1% hangs on every request, both destinations deliver
    every event exactly once, each player's events in order, with no dead letter; offsets reach the end."""
    enable3, enable3_url, userwise, userwise_url = vendors
    events = list(Traffic(seed=31, players=300, prefix="mix").stream(EVENTS))
    missions = mission_ids(events)
    expected = expected_at_userwise(events)
    await produce(broker.bootstrap_servers, topic, events)
    # The default retry timing and batch sizes: the size where a backoff that grows despite progress shows.
    retry = {"initial": 0.2, "max": 30.0, "retry_after_cap": 300.0, "halt_probe": 0.5}
    batch = {"max_events": 1000, "linger_ms": 200}
    destinations = [
        enable3_destination(enable3_url, retry=retry, timeout=2.0),
        userwise_destination(userwise_url, retry=retry, batch=batch, timeout=2.0),
    ]
    async with running_gateway(gateway_config(broker.bootstrap_servers, topic, destinations)) as gateway:

        def settled(name: str) -> bool:
            return gateway.value("gateway_in_flight_events", destination=name) == 0

        await wait_for(
            lambda: (
                len(enable3.event_ids("default")) >= len(missions)
                and len(userwise.app_log("default").event_uids) >= len(expected.event_uids)
                and settled("enable3")
                and settled("userwise")
            ),
            120,
            "every event at both vendors",
        )
        retries = gateway.value("gateway_delivery_retries_total", destination="userwise", reason="rate_limited")
    assert enable3.faults.total_injected > 0 and userwise.faults.total_injected > 0
    assert retries > 0
    assert sorted(enable3.event_ids("default")) == sorted(missions)
    assert enable3.tenant("default").duplicates == 0
    log = userwise.app_log("default")
    assert set(log.event_uids) == expected.event_uids
    assert log.duplicates == 0
    by_player: dict[str, list[str]] = {}
    for event in events:
        if event["event_id"] in set(missions):
            by_player.setdefault(event["player_id"], []).append(event["event_id"])
    for player, ids in list(by_player.items())[:50]:
        assert enable3.user_order("default", player) == ids
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    for name in ("enable3", "userwise"):
        offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.{name}", topic)
        assert sum(o or 0 for o in offsets.values()) == len(events)
