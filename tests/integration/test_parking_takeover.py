"""Parking when the process that parked a brand leaves the group: the process that takes its partitions over reads
what it parked, and keeps the brand's later events behind it."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, message, unibo_takes
from tests.integration import test_parking
from tests.integration.harness import (
    InProcessGateway,
    committed,
    gateway_config,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)

PARTITIONS = 8
BRANDS = ("casino-a", "casino-b")
A_KEY, B_KEY = "key-casino-a", "key-casino-b"


def _tree(bootstrap: str, topic: str, url: str, client_id: str, grace: float) -> dict[str, Any]:
    destination = unibo_destination(url, parking={"after": "1s"}, max_in_flight=400)
    destination["batch"] = {"max_events": 50, "linger_ms": 20}
    destination["credentials"] = {"casino-a": {"api_key": A_KEY}, "casino-b": {"api_key": B_KEY}}
    tree = gateway_config(bootstrap, topic, [destination], grace=grace)
    tree["kafka"]["client_id"] = client_id  # member ids sort by it: the assignors deal partitions in that order
    return tree


async def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]], brand_b_partitions: list[int]) -> None:
    """Brand B's players only to `brand_b_partitions` (the first replica's), brand A's to every partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = []
        for event in events:
            key, value = message(event)
            spread = zlib.crc32(key or b"")
            partition = brand_b_partitions[spread % len(brand_b_partitions)] if event["brand"] == "casino-b" else spread
            sent.append(await producer.send(topic, value, key=key, partition=partition % PARTITIONS))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _owned(gateway: InProcessGateway, topic: str) -> set[int]:
    consumers = [pipeline._consumer for pipeline in gateway.gateway.pipelines if pipeline._consumer is not None]
    return {tp.partition for consumer in consumers for tp in consumer.assignment() if tp.topic == topic}


@pytest.fixture(scope="module")
def kafka_like() -> Iterator[EmbeddedBroker]:
    """Tansu behind the relay that keeps commit metadata, as Kafka does: the successor knows which records above
    the commit the first replica settled (parked), and which it held."""
    with EmbeddedBroker(keep_commit_metadata=True) as embedded:
        yield embedded


@pytest.mark.chaos
async def test_the_successor_of_a_parking_replica_reads_what_it_parked_and_keeps_the_order(
    kafka_like: EmbeddedBroker,
) -> None:
    """Brand B's key is refused. The first replica owns every partition B's players write to: it holds B's share and
    parks the rest, while the second replica delivers brand A and never meets B. The first replica then leaves (a
    scale-down), B's key is fixed, and more of B's events arrive. The second replica takes the partitions over: it
    must read what the first one parked, and deliver B's later events after them. Before, it never read them (a
    process only looked for parked events at its start), and delivered the later events directly."""
    broker = kafka_like
    topic = "parking-takeover"
    await broker.create_topic(topic, partitions=PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", partitions=1)
    events = list(Traffic(seed=66, players=200, brands=BRANDS, prefix="takeover").stream(3000))
    before, after = events[:2000], events[2000:]
    takes = [e for e in events if unibo_takes(e)]
    expected = {brand: set(test_parking._ids(takes, brand)) for brand in BRANDS}
    sandbox = UniboSandbox({A_KEY: "casino-a"})  # brand B's key is refused

    def delivered(brand: str) -> set[str]:
        return set(sandbox.unique_ids(brand))

    async with SandboxServer(sandbox.app()) as server:
        bootstrap = broker.bootstrap_servers
        parker_tree = _tree(bootstrap, topic, server.url, "a-parker", grace=1.0)
        async with running_gateway(_tree(bootstrap, topic, server.url, "b-successor", grace=10.0)) as successor:
            async with running_gateway(parker_tree) as parker:

                def value(name: str) -> float:
                    return parker.value(name, destination="unibo", brand="casino-b")

                await wait_for(lambda: len(_owned(parker, topic) | _owned(successor, topic)) == PARTITIONS, 60, "join")
                brand_b_partitions = sorted(_owned(parker, topic))
                assert 0 < len(brand_b_partitions) < PARTITIONS
                await _produce(bootstrap, topic, before, brand_b_partitions)
                before_a = {e["event_id"] for e in before if e["brand"] == "casino-a" and unibo_takes(e)}
                await wait_for(lambda: delivered("casino-a") >= before_a, 60, "brand a's first events")
                consumed = "gateway_events_consumed_total"
                await wait_for(
                    lambda: (
                        parker.value(consumed, destination="unibo") + successor.value(consumed, destination="unibo")
                        == len(before)
                    ),
                    60,
                    "every first event consumed",
                )
                await wait_for(lambda: value("gateway_parked_events_total") > 0, 30, "brand b parked")
                parked = 0.0
                while value("gateway_parked_events_total") != parked:  # the last parking writes acknowledged
                    parked = value("gateway_parked_events_total")
                    await asyncio.sleep(1.0)
                assert parker.value("gateway_in_flight_events", destination="unibo") > 0  # B's share, held
                assert successor.value("gateway_brand_parking", destination="unibo", brand="casino-b") == 0
            sandbox.set_keys({A_KEY: "casino-a", B_KEY: "casino-b"})
            await wait_for(lambda: _owned(successor, topic) == set(range(PARTITIONS)), 30, "the takeover")
            await _produce(bootstrap, topic, after, brand_b_partitions)
            await wait_for(lambda: delivered("casino-b") >= expected["casino-b"], 60, "every event of brand b")
            await wait_for(lambda: delivered("casino-a") >= expected["casino-a"], 30, "every event of brand a")
            await wait_for(
                lambda: successor.value("gateway_brand_parking", destination="unibo", brand="casino-b") == 0,
                30,
                "brand b unparked",
            )
    print(f"\ntakeover: {parked:.0f} of brand b's events parked by the replica that left")
    for brand in BRANDS:
        assert delivered(brand) == expected[brand]
        assert test_parking._out_of_order(takes, brand, sandbox.unique_ids(brand)) == []
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)
