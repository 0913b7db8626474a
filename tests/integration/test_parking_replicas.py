"""Parking with two replicas in one group: one comes back from a halt well before the other, and a player's parked
events still never overtake the older ones the late replica held (in its lanes, or in per-player deliveries)."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration import test_parking, test_parking_per_request
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
from tests.integration.userwise_support import USERWISE_SECRET, expected_at_userwise, userwise_destination

PARTITIONS = 8
PARKING_PARTITIONS = 1
EVENTS = 3000
# Each replica has its own key for the halted brand, so the test can tell whose probe the vendor refused.
LATE_KEY, EARLY_KEY, A_KEY = "key-b-late-replica", "key-b-early-replica", "key-for-casino-a"
LATE_PROBE = 8.0  # the late replica probes its halted brand every 8 s; the early one every 0.5 s
BRANDS = ("casino-a", "casino-b")


@dataclass
class _Vendor:
    """One vendor's side of the scenario: its sandbox, how it refuses a key, and what it received."""

    name: str
    destination: Callable[[str], dict[str, Any]]
    sandbox: Any
    refused: int  # the status of a refused key
    late_key: str  # the late replica's key for brand B as its requests carry it
    credentials: Callable[[str], dict[str, str]]  # a brand's credentials with this api key
    delivered: Callable[[str], set[str]]
    expected: Callable[[Sequence[dict[str, Any]], str], set[str]]
    out_of_order: Callable[[Sequence[dict[str, Any]], str], list[str]]


def _unibo() -> _Vendor:
    sandbox = UniboSandbox({A_KEY: "casino-a"})  # brand B's keys are refused

    def destination(url: str) -> dict[str, Any]:
        made = unibo_destination(url, parking={"after": "1s"}, max_in_flight=400)
        made["batch"] = {"max_events": 50, "linger_ms": 20}
        return made

    return _Vendor(
        "unibo",
        destination,
        sandbox,
        403,
        LATE_KEY,
        lambda key: {"api_key": key},
        lambda brand: set(sandbox.unique_ids(brand)),
        lambda events, brand: set(test_parking._ids([e for e in events if unibo_takes(e)], brand)),
        lambda events, brand: test_parking._out_of_order(
            [e for e in events if unibo_takes(e)], brand, sandbox.unique_ids(brand)
        ),
    )


def _userwise() -> _Vendor:
    sandbox = UserWiseSandbox({A_KEY: "casino-a"}, USERWISE_SECRET)

    def destination(url: str) -> dict[str, Any]:
        # Its share (50) fits the per-player deliveries one brand may run (64): what it holds is in those, not lanes.
        made = userwise_destination(url, max_in_flight=100, concurrency=1, parking={"after": "1s"})
        made["batch"] = {"max_events": 100, "linger_ms": 20}
        return made

    return _Vendor(
        "userwise",
        destination,
        sandbox,
        401,
        base64.b64encode(LATE_KEY.encode()).decode(),  # UserWise's X-Api-Key is the key in base64
        lambda key: {"api_key": key, "secret_key": USERWISE_SECRET},
        lambda brand: set(sandbox.app_log(brand).event_uids),
        lambda events, brand: set(expected_at_userwise(e for e in events if e["brand"] == brand).event_uids),
        lambda events, brand: test_parking_per_request._out_of_order(sandbox, brand, events),
    )


def _tree(
    bootstrap: str, topic: str, vendor: _Vendor, url: str, client_id: str, brand_b_key: str, halt_probe: float
) -> dict[str, Any]:
    destination = vendor.destination(url)
    destination["credentials"] = {"casino-a": vendor.credentials(A_KEY), "casino-b": vendor.credentials(brand_b_key)}
    destination["retry"] = {**destination["retry"], "halt_probe": halt_probe}
    tree = gateway_config(bootstrap, topic, [destination])
    tree["kafka"]["client_id"] = client_id  # member ids sort by it: the assignors deal partitions in that order
    return tree


def _owned(gateway: InProcessGateway, topic: str) -> int:
    consumers = [pipeline._consumer for pipeline in gateway.gateway.pipelines if pipeline._consumer is not None]
    return sum(1 for consumer in consumers for tp in consumer.assignment() if tp.topic == topic)


@pytest.mark.chaos
@pytest.mark.parametrize("make_vendor", [_unibo, _userwise], ids=["unibo-lanes", "userwise-per-player"])
async def test_a_replica_that_comes_back_first_does_not_overtake_what_the_other_holds(
    broker: EmbeddedBroker, make_vendor: Callable[[], _Vendor]
) -> None:
    """Brand B's keys refused at both replicas, 3,000 events over 8 partitions: each replica holds B's share (in its
    lanes; for UserWise, in per-player deliveries) and parks the rest. The keys start working just after the late
    replica's probe, so for about 8 s only the early one delivers B, and its parking reader reads what the late one
    parked. A player's parked events wait until the late replica delivered that player's older ones. Before, players'
    events went out of order in every run (Unibo: 4-16 players in each of three)."""
    vendor = make_vendor()
    topic = f"parking-replicas-{vendor.name}"
    await broker.create_topic(topic, partitions=PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", partitions=1)
    # Made when the source had one partition: everything is parked to partition 0. The client ids put the early
    # replica first in both groups (member ids sort by them), so its reader holds that partition: it reads every
    # event the late replica parked, while the late replica still holds older events of the same players.
    await broker.create_topic(f"gw-{topic}.{vendor.name}.parked", partitions=PARKING_PARTITIONS)
    events = list(Traffic(seed=65, players=400, brands=BRANDS, prefix=f"replicas-{vendor.name}").stream(EVENTS))
    expected = {brand: vendor.expected(events, brand) for brand in BRANDS}
    app = vendor.sandbox.app()
    late_refusals: list[float] = []

    @web.middleware
    async def watch(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        response = await handler(request)
        if response.status == vendor.refused and request.headers.get("x-api-key") == vendor.late_key:
            late_refusals.append(time.monotonic())
        return response

    def value(gateway: InProcessGateway, name: str) -> float:
        return gateway.value(name, destination=vendor.name, brand="casino-b")

    app.middlewares.append(watch)
    async with SandboxServer(app) as server:
        url, bootstrap = server.url, broker.bootstrap_servers
        late_tree = _tree(bootstrap, topic, vendor, url, "b-late", LATE_KEY, LATE_PROBE)
        early_tree = _tree(bootstrap, topic, vendor, url, "a-early", EARLY_KEY, 0.5)
        async with running_gateway(late_tree) as late, running_gateway(early_tree) as early:
            await wait_for(lambda: _owned(late, topic) > 0 and _owned(early, topic) > 0, 60, "both own partitions")
            assert _owned(late, topic) + _owned(early, topic) == PARTITIONS
            await produce(bootstrap, topic, events)
            await wait_for(lambda: vendor.delivered("casino-a") >= expected["casino-a"], 90, "all of brand a")
            parked = "gateway_parked_events_total"
            await wait_for(lambda: value(late, parked) > 0 and value(early, parked) > 0, 30, "both parking b")
            # Right after a refused probe of the late replica, its next one is LATE_PROBE seconds away.
            probes = len(late_refusals)
            await wait_for(lambda: len(late_refusals) > probes, LATE_PROBE + 5, "a probe of the late replica")
            vendor.sandbox.set_keys({A_KEY: "casino-a", LATE_KEY: "casino-b", EARLY_KEY: "casino-b"})
            fixed_at = time.monotonic()
            await wait_for(lambda: vendor.delivered("casino-b") >= expected["casino-b"], 90, "brand b")
            delivered_in = time.monotonic() - fixed_at
            parking = "gateway_brand_parking"
            await wait_for(lambda: value(late, parking) == 0 and value(early, parking) == 0, 30, "b unparked")
            for gateway in (late, early):
                assert value(gateway, "gateway_parked_order_timeouts_total") == 0
    print(
        f"\n{vendor.name} replicas: parked {value(late, parked):.0f} + {value(early, parked):.0f}, "
        f"brand b delivered {delivered_in:.1f} s after its keys worked"
    )
    for brand in BRANDS:
        assert vendor.delivered(brand) == expected[brand]
        assert vendor.out_of_order(events, brand) == []
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    positions = await committed(broker.bootstrap_servers, f"gw-{topic}.{vendor.name}", topic)
    assert sum(p or 0 for p in positions.values()) == len(events)
