"""Parking with two replicas in one group: one comes back from a halt well before the other, and a player's parked
events still never overtake the older ones the late replica held in its lanes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
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
from tests.integration.test_parking import _events, _ids, _out_of_order

PARTITIONS = 8
PARKING_PARTITIONS = 1
EVENTS = 3000
# Each replica has its own key for the halted brand, so the test can tell whose probe the vendor refused.
LATE_KEY, EARLY_KEY, A_KEY = "key-b-late-replica", "key-b-early-replica", "key-for-casino-a"
LATE_PROBE = 8.0  # the late replica probes its halted brand every 8 s; the early one every 0.5 s


def _tree(bootstrap: str, topic: str, url: str, client_id: str, brand_b_key: str, halt_probe: float) -> dict[str, Any]:
    destination = unibo_destination(url, parking={"after": "1s"}, max_in_flight=400)
    destination["credentials"] = {"casino-a": {"api_key": A_KEY}, "casino-b": {"api_key": brand_b_key}}
    destination["batch"] = {"max_events": 50, "linger_ms": 20}
    destination["retry"] = {**destination["retry"], "halt_probe": halt_probe}
    tree = gateway_config(bootstrap, topic, [destination])
    tree["kafka"]["client_id"] = client_id  # member ids sort by it: the assignors deal partitions in that order
    return tree


def _owned(gateway: InProcessGateway, topic: str) -> int:
    consumers = [pipeline._consumer for pipeline in gateway.gateway.pipelines if pipeline._consumer is not None]
    return sum(1 for consumer in consumers for tp in consumer.assignment() if tp.topic == topic)


def _parked(gateway: InProcessGateway) -> float:
    return gateway.value("gateway_parked_events_total", destination="unibo", brand="casino-b")


def _parking(gateway: InProcessGateway) -> float:
    return gateway.value("gateway_brand_parking", destination="unibo", brand="casino-b")


def _unparked(gateway: InProcessGateway) -> float:
    return gateway.value("gateway_unparked_events_total", destination="unibo", brand="casino-b")


@pytest.mark.chaos
async def test_a_replica_that_comes_back_first_does_not_overtake_what_the_other_holds(broker: EmbeddedBroker) -> None:
    """Brand B's keys refused at both replicas, 3,000 events over 8 partitions: each replica holds B's share in its
    lanes and parks the rest. The keys start working just after the late replica's probe, so for about 8 s only
    the early one delivers B, and its parking reader reads what the late one parked. A player's parked events wait
    until the late replica's lanes delivered that player's older ones: before, 4-16 players' events went out of
    order in each of three runs."""
    topic = "parking-replicas"
    await broker.create_topic(topic, partitions=PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", partitions=1)
    # Made when the source had one partition: everything is parked to partition 0. The client ids put the early
    # replica first in both groups (member ids sort by them), so its reader holds that partition: it reads every
    # event the late replica parked, while the late replica still holds older events of the same players.
    await broker.create_topic(f"gw-{topic}.unibo.parked", partitions=PARKING_PARTITIONS)
    events = _events(seed=65, count=EVENTS, prefix="replicas")
    sandbox = UniboSandbox({A_KEY: "casino-a"})  # brand B's keys are refused
    app = sandbox.app()
    late_refusals: list[float] = []

    @web.middleware
    async def watch(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        response = await handler(request)
        if response.status == 403 and request.headers.get("x-api-key") == LATE_KEY:
            late_refusals.append(time.monotonic())
        return response

    app.middlewares.append(watch)
    async with SandboxServer(app) as server:
        late_tree = _tree(broker.bootstrap_servers, topic, server.url, "b-late", LATE_KEY, LATE_PROBE)
        early_tree = _tree(broker.bootstrap_servers, topic, server.url, "a-early", EARLY_KEY, 0.5)
        async with running_gateway(late_tree) as late, running_gateway(early_tree) as early:
            await wait_for(lambda: _owned(late, topic) > 0 and _owned(early, topic) > 0, 60, "both own partitions")
            assert _owned(late, topic) + _owned(early, topic) == PARTITIONS
            await produce(broker.bootstrap_servers, topic, events)
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(_ids(events, "casino-a")), 60, "a")
            await wait_for(lambda: _parked(late) > 0 and _parked(early) > 0, 30, "both replicas parking brand b")
            # Right after a refused probe of the late replica, its next one is LATE_PROBE seconds away.
            probes = len(late_refusals)
            await wait_for(lambda: len(late_refusals) > probes, LATE_PROBE + 5, "a probe of the late replica")
            sandbox.set_keys({A_KEY: "casino-a", LATE_KEY: "casino-b", EARLY_KEY: "casino-b"})
            fixed_at = time.monotonic()
            expected_b = _ids(events, "casino-b")
            await wait_for(lambda: len(sandbox.unique_ids("casino-b")) >= len(expected_b), 90, "brand b")
            delivered_in = time.monotonic() - fixed_at
            await wait_for(lambda: _parking(late) == 0 and _parking(early) == 0, 30, "brand b unparked")
            # The early replica's reader held the one parking partition: it read back what both parked.
            assert _unparked(early) >= _parked(late) + _parked(early)
            assert _unparked(late) == 0
            for gateway in (late, early):
                assert gateway.value("gateway_parked_order_timeouts_total", destination="unibo", brand="casino-b") == 0
    parked = f"{_parked(late):.0f} + {_parked(early):.0f}"
    print(f"\nreplicas: parked {parked}, brand b delivered {delivered_in:.1f} s after its keys worked")
    assert sorted(sandbox.unique_ids("casino-a")) == sorted(_ids(events, "casino-a"))
    assert sorted(sandbox.unique_ids("casino-b")) == sorted(expected_b)
    assert _out_of_order(events, "casino-b", sandbox.unique_ids("casino-b")) == []
    assert _out_of_order(events, "casino-a", sandbox.unique_ids("casino-a")) == []
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)
