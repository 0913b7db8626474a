"""Parking with a per-request connector (UserWise: one player's records per send, per-player chains): a halted brand's
stuck players hold only its own chain room, so the other brand goes on; its events come back in per-player order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic
from tests.integration.harness import committed, gateway_config, produce, read_topic, running_gateway, wait_for
from tests.integration.userwise_support import USERWISE_SECRET, Timeline, expected_at_userwise, userwise_destination

KEYS = {"casino-a": "app-key-casino-a", "casino-b": "app-key-casino-b"}
PLAYERS = 400  # 200 per brand: its share of max_in_flight (500) spans more players than the 64 deliveries one
# brand may run at once (16 per request slot, 4 slots with concurrency 1)


def _destination(url: str) -> dict[str, Any]:
    destination = userwise_destination(url, max_in_flight=1000, concurrency=1, parking={"after": "1s"})
    destination["credentials"] = {brand: {"api_key": key, "secret_key": USERWISE_SECRET} for brand, key in KEYS.items()}
    destination["batch"] = {"max_events": 100, "linger_ms": 20}
    return destination


def _sent_in_order(timeline: Iterable[tuple[str, str]]) -> Timeline:
    """A player's events and revenue events in first-arrival order (a re-sent request repeats its items)."""
    seen: set[tuple[str, str]] = set()
    order: Timeline = []
    for entry in timeline:
        if entry[0] != "attributes" and entry not in seen:
            seen.add(entry)
            order.append(entry)
    return order


def _out_of_order(sandbox: UserWiseSandbox, brand: str, events: Sequence[dict[str, Any]]) -> list[str]:
    expected = expected_at_userwise(e for e in events if e["brand"] == brand)
    log = sandbox.app_log(brand)
    return [
        player
        for player, timeline in expected.timelines.items()
        if _sent_in_order(log.timeline.get(player, [])) != _sent_in_order(timeline)
    ]


async def test_a_halted_brand_under_userwise_stalls_no_one_and_comes_back_in_order(
    broker: EmbeddedBroker, topic: str
) -> None:
    """Brand B's app key refused (401, halted): its players' deliveries wait, brand A gets every event meanwhile (a
    shared chain room would fill with B's 200 waiting players and stop A); B is parked, and once its key works its
    events arrive, each player's in source order; nothing is dead-lettered and every offset is committed."""
    events = list(Traffic(seed=71, players=PLAYERS, brands=tuple(KEYS), prefix="uwpark").stream(3000))
    expected_a = expected_at_userwise(e for e in events if e["brand"] == "casino-a").event_uids
    expected_b = expected_at_userwise(e for e in events if e["brand"] == "casino-b").event_uids
    sandbox = UserWiseSandbox({KEYS["casino-a"]: "casino-a"}, USERWISE_SECRET)
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_destination(server.url)])
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: set(sandbox.app_log("casino-a").event_uids) >= expected_a, 90, "all of brand a")
            assert gateway.value("gateway_tenant_halted", destination="userwise", tenant="casino-b") == 1
            assert sandbox.app_log("casino-b").event_uids == {}
            parked = gateway.value("gateway_parked_events_total", destination="userwise", brand="casino-b")
            assert parked > 0
            sandbox.set_keys({key: brand for brand, key in KEYS.items()})
            await wait_for(lambda: set(sandbox.app_log("casino-b").event_uids) >= expected_b, 90, "brand b")
            await wait_for(
                lambda: gateway.value("gateway_brand_parking", destination="userwise", brand="casino-b") == 0,
                30,
                "brand b unparked",
            )
    assert set(sandbox.app_log("casino-a").event_uids) == expected_a
    assert set(sandbox.app_log("casino-b").event_uids) == expected_b
    assert _out_of_order(sandbox, "casino-b", events) == []
    assert _out_of_order(sandbox, "casino-a", events) == []
    duplicates = sandbox.app_log("casino-a").duplicates + sandbox.app_log("casino-b").duplicates
    print(f"\nuserwise, halted brand: {parked:.0f} parked, {duplicates} duplicates")
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.userwise", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)
