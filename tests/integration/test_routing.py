"""Routing end to end: brands to their own credentials, per-tenant halts, and connector bugs contained."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from connectors.unibo import UniboConnector
from connectors.unibo.config import UniboOptions
from connectors.unibo.mapping import map_event
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from gateway import registry
from gateway.connector import VendorRecord
from gateway.events import Event
from tests.integration.harness import gateway_config, produce, read_topic, running_gateway, unibo_destination, wait_for

KEYS = {"casino-a": "key-for-casino-a", "casino-b": "key-for-casino-b"}


def _multi_brand_destination(url: str) -> dict[str, Any]:
    destination = unibo_destination(url)
    destination["credentials"] = {brand: {"api_key": key} for brand, key in KEYS.items()}
    return destination


async def test_each_brand_is_sent_with_its_own_key(broker: EmbeddedBroker, topic: str) -> None:
    """Events of each brand reach the vendor under that brand's key and no other."""
    events = list(Traffic(seed=51, players=200, brands=tuple(KEYS), prefix="brand").stream(1500))
    sandbox = UniboSandbox({key: brand for brand, key in KEYS.items()})
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_multi_brand_destination(server.url)])
        expected = {e["event_id"] for e in events if unibo_takes(e)}
        async with running_gateway(tree):
            await wait_for(lambda: sandbox.total_unique >= len(expected), 60, "both brands delivered")
    for brand in KEYS:
        assert set(sandbox.unique_ids(brand)) == {
            e["event_id"] for e in events if unibo_takes(e) and e.get("brand") == brand
        }


async def test_one_brand_halted_does_not_stop_the_other(broker: EmbeddedBroker, topic: str) -> None:
    """A revoked key halts only its brand; the other brand keeps delivering, and the halted one resumes after."""
    events = list(Traffic(seed=52, players=200, brands=tuple(KEYS), prefix="halt").stream(1500))
    sandbox = UniboSandbox({KEYS["casino-a"]: "casino-a"})  # casino-b's key is not accepted (yet)
    await produce(broker.bootstrap_servers, topic, events)
    expected_a = {e["event_id"] for e in events if unibo_takes(e) and e.get("brand") == "casino-a"}
    expected_b = {e["event_id"] for e in events if unibo_takes(e) and e.get("brand") == "casino-b"}
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [_multi_brand_destination(server.url)])
        async with running_gateway(tree) as gateway:
            await wait_for(lambda: len(sandbox.unique_ids("casino-a")) >= len(expected_a), 60, "brand a")
            await wait_for(
                lambda: gateway.value("gateway_tenant_halted", destination="unibo", tenant="casino-b") == 1,
                30,
                "brand b halted",
            )
            assert gateway.value("gateway_tenant_halted", destination="unibo", tenant="casino-a") == 0
            assert sandbox.unique_ids("casino-b") == []
            sandbox.set_keys({key: brand for brand, key in KEYS.items()})
            await wait_for(lambda: len(sandbox.unique_ids("casino-b")) >= len(expected_b), 60, "brand b resumed")
    assert set(sandbox.unique_ids("casino-a")) == expected_a
    assert set(sandbox.unique_ids("casino-b")) == expected_b
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []


class BuggyUnibo(UniboConnector):
    """The Unibo connector with a mapping bug that crashes on some events."""

    name = "buggy-unibo"

    @staticmethod
    def map(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
        if event.event_id.endswith("7"):
            raise KeyError("a connector bug")
        return map_event(event, options)


@pytest.fixture
def buggy_connector() -> Iterator[None]:
    """Register the buggy connector for one test."""
    registry.get.cache_clear()
    registry.available.cache_clear()
    registry.BUILTIN["buggy-unibo"] = f"{__name__}:BUGGY"
    try:
        yield
    finally:
        del registry.BUILTIN["buggy-unibo"]
        registry.get.cache_clear()
        registry.available.cache_clear()


BUGGY = BuggyUnibo()


async def test_a_connector_bug_dead_letters_the_event_and_the_pipeline_goes_on(
    broker: EmbeddedBroker, topic: str, buggy_connector: None
) -> None:
    """An exception inside a connector's mapping dead-letters that event as mapping_error; the rest is delivered."""
    events = [e for e in Traffic(seed=53, players=100, prefix="bug").stream(600) if unibo_takes(e)]
    crashing = {e["event_id"] for e in events if e["event_id"].endswith("7")}
    sandbox = UniboSandbox({"k": "default"})
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as server:
        destination = unibo_destination(server.url, key="k")
        destination["connector"] = "buggy-unibo"
        async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])):
            await wait_for(lambda: sandbox.total_unique >= len(events) - len(crashing), 60, "the healthy events")
            dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=len(crashing), timeout=30)
    assert set(sandbox.unique_ids("default")) == {e["event_id"] for e in events} - crashing
    assert {record.headers["gateway-reason"] for record in dead} == {"mapping_error"}
    assert len(dead) == len(crashing)
    assert all("KeyError" in record.headers["gateway-error"] for record in dead)
