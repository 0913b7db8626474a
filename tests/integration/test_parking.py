"""Parking end to end: a halted brand or a stuck record stalls no other brand; parked events come back in order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.harness import (
    InProcessGateway,
    committed,
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)

KEYS = {"casino-a": "key-for-casino-a", "casino-b": "key-for-casino-b"}
EVENTS = 3000
MAX_IN_FLIGHT = 150


BY_COUNT = {"max_in_flight": MAX_IN_FLIGHT}
BY_BYTES = {"max_in_flight": 50_000, "max_in_flight_bytes": 64 * 1024}  # the smallest: about 45 messages


def _destination(url: str, bounds: dict[str, int] = BY_COUNT) -> dict[str, Any]:
    destination = unibo_destination(url, parking={"after": "1s"})
    destination.update(bounds)
    destination["credentials"] = {brand: {"api_key": key} for brand, key in KEYS.items()}
    destination["batch"] = {"max_events": 50, "linger_ms": 20}
    return destination


def _events(seed: int, count: int, prefix: str) -> list[dict[str, Any]]:
    traffic = Traffic(seed=seed, players=200, brands=tuple(KEYS), prefix=prefix)
    return [e for e in traffic.stream(count) if unibo_takes(e)]


def _ids(events: Sequence[dict[str, Any]], brand: str) -> list[str]:
    return [e["event_id"] for e in events if e["brand"] == brand]


def _out_of_order(events: Sequence[dict[str, Any]], brand: str, arrived: list[str]) -> list[str]:
    """Players of `brand` whose events reached the vendor (first arrivals) in another order than the source's."""
    position = {event_id: index for index, event_id in enumerate(arrived)}
    by_player: dict[str, list[str]] = {}
    for event in events:
        if event["brand"] == brand and event.get("player_id"):
            by_player.setdefault(event["player_id"], []).append(event["event_id"])
    return [player for player, ids in by_player.items() if [i for i in sorted(ids, key=position.__getitem__)] != ids]


def _value(gateway: InProcessGateway, name: str, brand: str) -> float:
    return gateway.value(name, destination="unibo", brand=brand)


@pytest.mark.parametrize("bounds", [BY_COUNT, BY_BYTES], ids=["count", "bytes"])
async def test_a_halted_brand_is_parked_and_the_other_gets_every_event(
    broker: EmbeddedBroker, topic: str, bounds: dict[str, int]
) -> None:
    """Brand B's key refused, max_in_flight 150, 3,000 events: brand A gets all of its events while B is halted (on
    main it had 66 after 15 s, every partition paused); B's come back in per-player order once its key works. Bound
    in bytes, B's share may hold a message more than half the destination's bound: that must not pause A for good."""
    events = _events(seed=61, count=EVENTS, prefix="park")
    sandbox = UniboSandbox({KEYS["casino-a"]: "casino-a"})  # casino-b's key is refused
    await produce(broker.bootstrap_servers, topic, events)
    expected_a, expected_b = _ids(events, "casino-a"), _ids(events, "casino-b")
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_destination(server.url, bounds)])
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(expected_a), 60, "all of brand a")
            assert gateway.value("gateway_tenant_halted", destination="unibo", tenant="casino-b") == 1
            assert sandbox.unique_ids("casino-b") == []
            await wait_for(
                lambda: gateway.value("gateway_in_flight_events", destination="unibo") <= bounds["max_in_flight"],
                20,
                "parking writes acknowledged",
            )
            parked = _value(gateway, "gateway_parked_events_total", "casino-b")
            assert parked > 0
            assert _value(gateway, "gateway_brand_parking", "casino-b") == 1
            assert _value(gateway, "gateway_parked_events_total", "casino-a") == 0
            sandbox.set_keys({key: brand for brand, key in KEYS.items()})
            await wait_for(lambda: len(sandbox.unique_ids("casino-b")) >= len(expected_b), 60, "brand b after its key")
            await wait_for(lambda: _value(gateway, "gateway_brand_parking", "casino-b") == 0, 30, "brand b unparked")
            assert _value(gateway, "gateway_unparked_events_total", "casino-b") >= parked
    assert sorted(sandbox.unique_ids("casino-a")) == sorted(expected_a)
    assert sorted(sandbox.unique_ids("casino-b")) == sorted(expected_b)
    assert _out_of_order(events, "casino-b", sandbox.unique_ids("casino-b")) == []
    assert _out_of_order(events, "casino-a", sandbox.unique_ids("casino-a")) == []
    duplicates = sandbox.tenant("casino-a").duplicates + sandbox.tenant("casino-b").duplicates
    print(f"\nhalted brand: {parked:.0f} parked, {duplicates} duplicates")
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)


async def test_a_stuck_record_is_parked_with_its_brand_and_the_other_goes_on(
    broker: EmbeddedBroker, topic: str
) -> None:
    """One record of brand B answered 503 forever (retries have no limit): B's backlog reaches its share, B is parked
    after parking.after, brand A gets every event; once the record goes through, B's events follow in order."""
    events = _events(seed=62, count=EVENTS, prefix="stuck")
    sandbox = UniboSandbox({key: brand for brand, key in KEYS.items()})
    stuck = _ids(events, "casino-b")[5]
    sandbox.set_stuck_items([stuck])
    await produce(broker.bootstrap_servers, topic, events)
    expected_a, expected_b = _ids(events, "casino-a"), _ids(events, "casino-b")
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_destination(server.url)])
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(expected_a), 60, "all of brand a")
            assert stuck not in sandbox.unique_ids("casino-b")
            assert _value(gateway, "gateway_parked_events_total", "casino-b") > 0
            sandbox.set_stuck_items([])
            await wait_for(lambda: len(sandbox.unique_ids("casino-b")) >= len(expected_b), 60, "brand b")
            await wait_for(lambda: _value(gateway, "gateway_brand_parking", "casino-b") == 0, 30, "brand b unparked")
    assert sorted(sandbox.unique_ids("casino-a")) == sorted(expected_a)
    assert sorted(sandbox.unique_ids("casino-b")) == sorted(expected_b)
    assert _out_of_order(events, "casino-b", sandbox.unique_ids("casino-b")) == []
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []


@pytest.fixture(scope="module")
def kafka_like() -> Iterator[EmbeddedBroker]:
    """Tansu behind the relay that keeps commit metadata, as Kafka does (Tansu alone drops it)."""
    with EmbeddedBroker(keep_commit_metadata=True) as embedded:
        yield embedded


async def test_parked_players_keep_their_order_across_a_restart(kafka_like: EmbeddedBroker) -> None:
    """Stopped while brand B's events are parked: the next start parks B's new events behind the old ones until the
    reader has delivered those, and the events held in memory at the stop (read again, and older than anything
    parked) go first, so each player's events still arrive in source order; nothing is lost."""
    broker = kafka_like
    topic = "parking-restart"
    await broker.create_topic(topic, partitions=3)
    await broker.create_topic(f"{topic}.dlq", partitions=1)
    first = _events(seed=63, count=EVENTS, prefix="restart")
    later = _events(seed=64, count=1500, prefix="later")
    sandbox = UniboSandbox({KEYS["casino-a"]: "casino-a"})
    await produce(broker.bootstrap_servers, topic, first)
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_destination(server.url)])
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(_ids(first, "casino-a")), 60, "brand a")
            await wait_for(lambda: _value(gateway, "gateway_parked_events_total", "casino-b") > 100, 30, "parked")
        # Stopped with B's events parked. B's key works from now on, and more events of every player arrive.
        sandbox.set_keys({key: brand for brand, key in KEYS.items()})
        await produce(broker.bootstrap_servers, topic, later)
        events = first + later
        async with running_gateway(tree) as gateway:
            await wait_for(
                lambda: len(sandbox.unique_ids("casino-b")) >= len(_ids(events, "casino-b")),
                90,
                "brand b after restart",
            )
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(_ids(events, "casino-a")), 30, "a")
            await wait_for(lambda: _value(gateway, "gateway_brand_parking", "casino-b") == 0, 30, "brand b unparked")
    assert sorted(sandbox.unique_ids("casino-a")) == sorted(_ids(events, "casino-a"))
    assert sorted(sandbox.unique_ids("casino-b")) == sorted(_ids(events, "casino-b"))
    assert _out_of_order(events, "casino-b", sandbox.unique_ids("casino-b")) == []
    assert _out_of_order(events, "casino-a", sandbox.unique_ids("casino-a")) == []
    duplicates = sandbox.tenant("casino-a").duplicates + sandbox.tenant("casino-b").duplicates
    print(f"\nrestart while parked: {duplicates} duplicates")
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)
