"""UserWise failure paths end to end: refused key or hash halts and resumes; a rejected request is split; SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from tests.integration.harness import (
    GatewayProcess,
    committed,
    gateway_config,
    http_get,
    produce,
    read_topic,
    running_gateway,
    wait_for,
    write_config,
)
from tests.integration.userwise_support import (
    USERWISE_KEY,
    USERWISE_SECRET,
    expected_at_userwise,
    userwise_destination,
)


@pytest.fixture
async def served() -> AsyncIterator[tuple[UserWiseSandbox, str]]:
    """A UserWise sandbox accepting USERWISE_KEY (tenant `default`) and USERWISE_SECRET, on a free port."""
    sandbox = UserWiseSandbox({USERWISE_KEY: "default"}, USERWISE_SECRET, fault_seed=5)
    async with SandboxServer(sandbox.app()) as server:
        yield sandbox, server.url


def _events(count: int, seed: int) -> list[dict[str, Any]]:
    return list(Traffic(seed=seed, players=80, prefix=f"uwf{seed}").stream(count))


async def test_bad_key_then_bad_hash_halt_keep_everything_and_resume(
    broker: EmbeddedBroker, topic: str, served: tuple[UserWiseSandbox, str]
) -> None:
    """A refused key, then a hash signed with a stale secret: halted, nothing stored or dead-lettered; fixed: all."""
    sandbox, url = served
    events = _events(600, seed=1)
    expected = expected_at_userwise(events)
    sandbox.set_keys({"another-app-key": "default"})
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [userwise_destination(url)])
    async with running_gateway(tree) as gateway:

        def halted() -> bool:
            return gateway.value("gateway_tenant_halted", destination="userwise", tenant="default") == 1

        await wait_for(halted, 30, "the tenant to halt on the key")
        assert gateway.value("gateway_destination_up", destination="userwise") == 0
        probes = sandbox.stats.key_failures
        await wait_for(lambda: sandbox.stats.key_failures >= probes + 2, 10, "slow probes with the key")
        sandbox.set_keys({USERWISE_KEY: "default"})
        sandbox.set_secret("the-company-rotated-its-secret")
        await wait_for(lambda: sandbox.stats.hash_failures >= 2, 10, "probes refused on the hash")
        assert halted()
        assert sandbox.total_events == 0
        assert gateway.gateway.http is not None
        status, _ = await http_get(f"{gateway.gateway.http.url}/readyz")
        assert status == 503
        sandbox.set_secret(USERWISE_SECRET)
        await wait_for(
            lambda: (
                len(sandbox.app_log("default").event_uids) >= len(expected.event_uids)
                and gateway.value("gateway_in_flight_events", destination="userwise") == 0
            ),
            60,
            "delivery after the fix",
        )
        assert not halted()
        await wait_for(lambda: gateway.value("gateway_destination_up", destination="userwise") == 1, 10, "up again")
    log = sandbox.app_log("default")
    assert set(log.event_uids) == expected.event_uids
    assert set(log.revenue) == expected.transaction_ids
    assert log.duplicates == 0
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.userwise", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)


async def test_a_rejected_request_is_split_until_the_bad_event_stands_alone(
    broker: EmbeddedBroker, topic: str, served: tuple[UserWiseSandbox, str]
) -> None:
    """One bad event inside a 12-event request: the engine splits it, dead-letters only that event, delivers the rest
    in order, and no acknowledged event is sent twice."""
    sandbox, url = served
    rounds = [
        {"event_id": f"split-{index}", "type": "gameround", "occurred_at": f"2026-11-03T10:00:{index:02d}Z",
         "player_id": "splitter", "round_id": f"r{index}", "game_id": "g1", "kind": "bet", "amount": "1",
         "currency": "EUR"}
        for index in range(12)
    ]  # fmt: skip
    others = _events(400, seed=2)
    expected = expected_at_userwise(others + rounds)
    bad = "split-5"
    sandbox.set_fail_uids({bad})
    await produce(broker.bootstrap_servers, topic, rounds + others)
    tree = gateway_config(
        broker.bootstrap_servers, topic, [userwise_destination(url, batch={"max_events": 500, "linger_ms": 300})]
    )
    async with running_gateway(tree) as gateway:
        dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=1, timeout=30)
        await wait_for(
            lambda: (
                len(sandbox.app_log("default").event_uids) >= len(expected.event_uids) - 1
                and gateway.value("gateway_in_flight_events", destination="userwise") == 0
            ),
            60,
            "the rest delivered",
        )
        assert gateway.value("gateway_events_dead_lettered_total", destination="userwise", reason="rejected") == 1
    log = sandbox.app_log("default")
    assert sandbox.stats.rejected >= 2  # the 12-event request, then smaller ones while splitting
    assert set(log.event_uids) == expected.event_uids - {bad}
    assert log.duplicates == 0
    assert [uid for _, uid in log.timeline["splitter"]] == [f"split-{i}" for i in range(12) if i != 5]
    assert len(dead) == 1
    assert bad in dead[0].value.decode()
    assert dead[0].headers["gateway-reason"] == "rejected"
    assert dead[0].headers["gateway-status"] == "422"
    assert "fail_uids" in dead[0].headers["gateway-error"]


async def _produce_slowly(broker: EmbeddedBroker, topic: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 500):
        await produce(broker.bootstrap_servers, topic, events[start : start + 500])
        await asyncio.sleep(0.4)


@pytest.mark.chaos
async def test_sigkill_mid_stream_and_restart_miss_nothing(
    broker: EmbeddedBroker, topic: str, served: tuple[UserWiseSandbox, str], tmp_path: Path
) -> None:
    """SIGKILL the gateway process while events stream in; after a restart every expected record is there.

    One kill: repeated kills of the core are covered by tests/integration/test_process.py."""
    sandbox, url = served
    events = list(Traffic(seed=41, players=300, prefix="uwkill").stream(4000))
    expected = expected_at_userwise(events)
    # Half the requests take 0.1 s, so requests are in flight when the kill lands.
    sandbox.faults.add(FaultPlan(kind="slow", delay=0.1, fraction=0.5, path_prefix="/api/v1/appuser/"))
    port = free_port()
    destination = userwise_destination(url, batch={"max_events": 300, "linger_ms": 100})
    tree = gateway_config(broker.bootstrap_servers, topic, [destination], http_port=port)
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")

    async def ready() -> bool:
        return (await http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 200

    producer = asyncio.create_task(_produce_slowly(broker, topic, events))
    log = sandbox.app_log
    try:
        for _ in range(1):  # one kill mid-stream, then the restart below
            process.start()
            await wait_for(ready, 60, "the gateway process to be ready")
            accepted = sandbox.stats.accepted

            def delivering(before: int = accepted) -> bool:
                return sandbox.stats.accepted > before + 5

            await wait_for(delivering, 30, "some deliveries")
            await asyncio.sleep(0.7)
            process.signal(signal.SIGKILL)
            assert await process.wait(10) == -signal.SIGKILL
        await producer
        process.start()
        await wait_for(ready, 60, "the gateway process to be ready")
        await wait_for(
            lambda: (
                set(log("default").event_uids) >= expected.event_uids
                and set(log("default").revenue) >= expected.transaction_ids
            ),
            120,
            "every record after the kills",
        )
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        producer.cancel()
        process.stop()
    assert set(log("default").event_uids) == expected.event_uids
    assert set(log("default").revenue) == expected.transaction_ids
    for player, attributes in expected.attributes.items():
        assert log("default").attributes.get(player, {}) == attributes, player
    print(f"\nSIGKILL: {len(expected.event_uids)} events, {log('default').duplicates} re-sent after the kills")
