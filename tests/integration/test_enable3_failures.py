"""Enable3 failure paths end to end: 409 duplicates, 400 rejects, revoked keys; nothing is lost on any of them."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic
from tests.integration.enable3_support import (
    ENABLE3_KEY,
    RunningEnable3,
    enable3,  # noqa: F401 - the fixture
    enable3_destination,
    mission_ids,
)
from tests.integration.harness import gateway_config, http_get, produce, read_topic, running_gateway, wait_for


def _missions(count: int, seed: int) -> list[dict[str, Any]]:
    events = list(Traffic(seed=seed, players=40, prefix=f"f{seed}").stream(count))
    wanted = set(mission_ids(events))
    return [event for event in events if event["event_id"] in wanted]


async def _post_directly(url: str, events: list[dict[str, Any]]) -> None:
    """Store events at the sandbox as if an earlier run (or crash) had already sent them."""
    async with aiohttp.ClientSession() as session:
        for event in events:
            body = {
                "id": event["event_id"],
                "userId": event["player_id"],
                "eventId": "seeded",
                "eventTags": [],
                "value": 1,
                "createdAt": "2026-11-01 12:00:00",
            }
            async with session.post(f"{url}/api/v1/event", json=body, headers={"X-API-KEY": ENABLE3_KEY}) as response:
                assert response.status == 201


async def test_409_is_a_counted_duplicate_and_a_400_is_dead_lettered_alone(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """Ids Enable3 already has get 409, counted as duplicates and never retried; a 400 goes to the DLQ with its body."""
    events = _missions(1200, seed=41)
    seen, bad = events[100:130], events[500]["event_id"]
    await _post_directly(enable3.url, seen)
    enable3.sandbox.conflict_on_duplicate = True
    enable3.sandbox.set_fail_ids([bad], 400)
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: enable3.sandbox.total_events >= len(events) - 1, 60, "every good event")
        dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=1, timeout=20)
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 20, "settled")
        assert gateway.value("gateway_events_duplicate_total", destination="enable3") == len(seen)
        assert gateway.value("gateway_events_dead_lettered_total", destination="enable3", reason="rejected") == 1
        retries = [
            s.value
            for metric in gateway.gateway.registry.collect()
            if metric.name == "gateway_delivery_retries"
            for s in metric.samples
            if s.name.endswith("_total")
        ]
        assert sum(retries) == 0
    assert enable3.sandbox.stats.conflicts == len(seen)  # each answered once: a 409 is not retried
    assert set(enable3.sandbox.event_ids("default")) == {e["event_id"] for e in events} - {bad}
    assert len(dead) == 1 and dead[0].headers["gateway-reason"] == "rejected"
    assert dead[0].headers["gateway-status"] == "400"
    assert orjson.loads(dead[0].value)["event_id"] == bad
    assert "refused by the sandbox" in dead[0].headers["gateway-error"]


async def test_401_halts_the_tenant_then_resumes_with_nothing_lost(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """A revoked key halts sending (not ready, nothing dead-lettered); once accepted again, everything arrives."""
    events = _missions(600, seed=42)
    enable3.sandbox.set_keys({})
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(
            lambda: gateway.value("gateway_tenant_halted", destination="enable3", tenant="default") == 1, 30, "halt"
        )
        assert gateway.value("gateway_destination_up", destination="enable3") == 0
        assert gateway.gateway.http is not None
        status, _ = await http_get(f"{gateway.gateway.http.url}/readyz")
        assert status == 503
        probes = enable3.sandbox.stats.auth_failures
        assert probes < 40  # halted: one prober re-sends slowly instead of every lane hammering the vendor
        enable3.sandbox.set_keys({ENABLE3_KEY: "default"})
        await wait_for(lambda: enable3.sandbox.total_events >= len(events), 60, "every event after the fix")
        await wait_for(
            lambda: gateway.value("gateway_tenant_halted", destination="enable3", tenant="default") == 0, 10, "resume"
        )
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 20, "settled")
    assert sorted(enable3.sandbox.event_ids("default")) == sorted(e["event_id"] for e in events)
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=2) == []


async def test_429_5xx_and_resets_are_retried_honouring_retry_after_with_nothing_lost(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """Rate limits, 503s and connection resets are each retried (by reason) until every event is delivered once."""
    events = _missions(800, seed=43)
    enable3.sandbox.faults.add(FaultPlan(kind="rate_limit", count=3, retry_after=1, path_prefix="/api/v1/event"))
    enable3.sandbox.faults.add(FaultPlan(kind="status", status=503, count=5, path_prefix="/api/v1/event"))
    enable3.sandbox.faults.add(FaultPlan(kind="reset", count=2, path_prefix="/api/v1/event"))
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: enable3.sandbox.total_events >= len(events), 60, "every event")
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 20, "settled")
        assert gateway.value("gateway_delivery_retries_total", destination="enable3", reason="rate_limited") == 3
        assert gateway.value("gateway_delivery_retries_total", destination="enable3", reason="http_503") == 5
        assert gateway.value("gateway_delivery_retries_total", destination="enable3", reason="connection") == 2
    assert sorted(enable3.sandbox.event_ids("default")) == sorted(e["event_id"] for e in events)
    assert enable3.sandbox.faults.total_injected == 10
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=2) == []


async def test_404_to_every_player_halts_the_tenant_and_a_probe_resumes_it(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
) -> None:
    """Enable3's 404 is "user not found or unauthorized". When every request gets it (a wrong key, or a wrong
    base_url), the first players' records are dead-lettered one by one, then the tenant halts instead of
    dead-lettering the whole stream; once Enable3 accepts again, the probe resumes it and everything else arrives.
    Nothing is lost: every event is either at the sandbox or in the DLQ."""
    events = _missions(600, seed=43)
    ids = {event["event_id"] for event in events}
    enable3.sandbox.set_fail_ids(ids, 404)
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(
            lambda: gateway.value("gateway_tenant_halted", destination="enable3", tenant="default") == 1, 30, "halt"
        )
        enable3.sandbox.set_fail_ids([], 404)
        await wait_for(
            lambda: gateway.value("gateway_tenant_halted", destination="enable3", tenant="default") == 0, 20, "resume"
        )
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="enable3") == 0, 60, "settled")
        dead_count = gateway.value("gateway_events_dead_lettered_total", destination="enable3", reason="rejected")
    dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=int(dead_count), timeout=20)
    dead_ids = {orjson.loads(d.value)["event_id"] for d in dead}
    # Only the players before the fifth were dead-lettered: nothing after the halt.
    assert 1 <= len({orjson.loads(d.value)["player_id"] for d in dead}) <= 4
    assert len(dead) < len(events) // 10  # a handful, not the stream
    assert {d.headers["gateway-status"] for d in dead} == {"404"}
    assert set(enable3.sandbox.event_ids("default")) == ids - dead_ids
