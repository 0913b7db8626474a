"""Background tasks that fail (dead-letter writes, lanes at drain, periodic commits) are loud and never lose events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from gateway import binding
from gateway.app import Gateway
from gateway.delivery import DeliveryEngine
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    committed,
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)


def _events(seed: int, count: int, player: str) -> list[dict[str, Any]]:
    return [dict(event, player_id=player) for event in Traffic(seed=seed, players=1).stream(count)]


async def _run_until_it_fails(tree: dict[str, Any], after: Callable[[Gateway], None] | None = None) -> Gateway:
    """Run a gateway that must end by itself with an error (bounded); returns it for its metrics."""
    gateway = Gateway(binding.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    try:
        if after is not None:
            await wait_for(lambda: bool(gateway.pipelines) and all(p.joined for p in gateway.pipelines), 30, "join")
            after(gateway)
        with pytest.raises(BaseExceptionGroup) as failure:
            await asyncio.wait_for(task, 60)
    finally:
        gateway.stop()
        if not task.done():
            await asyncio.wait_for(task, 60)
    assert failure.group_contains(RuntimeError)
    return gateway


def _failures(gateway: Gateway, task: str) -> float:
    return gateway.registry.get_sample_value("gateway_task_failures_total", {"destination": "unibo", "task": task}) or 0


async def test_a_dead_letter_producer_that_fails_with_a_bug_fails_the_process_and_commits_nothing_past_it(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead-letter write raises a non-Kafka error: logged, counted, the run fails instead of stalling silently,
    the offset stays before the message; a run without the fault dead-letters it and delivers the rest."""
    [(partition, offset)] = await produce(broker.bootstrap_servers, topic, [b"{not json"], key=b"p-dlq")
    events = _events(51, 30, "p-dlq")
    await produce(broker.bootstrap_servers, topic, events)
    original = AIOKafkaProducer.send_and_wait

    async def broken(self: AIOKafkaProducer, topic_name: str, *args: Any, **kwargs: Any) -> Any:
        if topic_name.endswith(".dlq"):
            raise RuntimeError("a bug in the dead-letter path")
        return await original(self, topic_name, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaProducer, "send_and_wait", broken)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    with capture_logs() as logs:
        gateway = await _run_until_it_fails(tree)
    assert _failures(gateway, "dead_letter") == 1
    assert any(line["event"] == "background task failed" and line["task"] == "dead_letter" for line in logs)
    assert ((await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic))[partition] or 0) <= offset
    monkeypatch.undo()
    async with running_gateway(tree) as again:
        expected = {event["event_id"] for event in events if unibo_takes(event)}
        await wait_for(lambda: set(unibo.sandbox.unique_ids("default")) >= expected, 60, "the events after it")
        await wait_for(lambda: again.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
    [letter] = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=1)
    assert letter.headers["gateway-source"] == f"{topic}/{partition}/{offset}"


async def test_a_dead_letter_producer_failing_transiently_holds_the_offset_until_it_writes(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka refusing the dead-letter writes for a while: the partition's offset stays before the message, then the
    dead letter is written and the offset moves on; nothing is lost."""
    [(partition, offset)] = await produce(broker.bootstrap_servers, topic, [b"{not json"], key=b"p-flaky")
    original = AIOKafkaProducer.send_and_wait
    refusals: list[str] = []

    async def flaky(self: AIOKafkaProducer, topic_name: str, *args: Any, **kwargs: Any) -> Any:
        if topic_name.endswith(".dlq") and len(refusals) < 8:
            refusals.append(topic_name)
            raise KafkaConnectionError("broker unavailable")
        return await original(self, topic_name, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaProducer, "send_and_wait", flaky)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: len(refusals) >= 3, 30, "refused dead-letter writes")
        assert ((await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic))[partition] or 0) <= offset
        await wait_for(
            lambda: (
                gateway.value("gateway_events_dead_lettered_total", destination="unibo", reason="invalid_json") == 1
            ),
            60,
            "the dead letter written once Kafka takes it",
        )
        await wait_for(lambda: gateway.value("gateway_in_flight_events", destination="unibo") == 0, 30, "settled")
    assert (await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic))[partition] == offset + 1
    assert len(await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=1)) == 1


async def test_a_lane_failing_during_the_drain_fails_the_run_and_commits_nothing_past_it(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane that breaks while draining at shutdown: the run ends with the error (not a silent exit 0) and its
    records stay uncommitted; a restart delivers every event."""
    events = [event for event in Traffic(seed=53, players=50, prefix="drain").stream(600) if unibo_takes(event)]
    unibo.sandbox.faults.add(FaultPlan(kind="slow", delay=0.5))
    original = DeliveryEngine.deliver
    stopping: list[asyncio.Event] = []

    async def breaks_at_drain(self: DeliveryEngine, tenant: Any, items: Any) -> None:
        if stopping and stopping[0].is_set():
            raise RuntimeError("a bug in a lane at drain")
        await original(self, tenant, items)

    monkeypatch.setattr(DeliveryEngine, "deliver", breaks_at_drain)
    tree = gateway_config(
        broker.bootstrap_servers, topic, [unibo_destination(unibo.url, batch={"max_events": 20, "linger_ms": 20})]
    )

    def stop_when_busy(gateway: Gateway) -> None:
        stopping.append(gateway.stopping)

        async def later() -> None:
            await produce(broker.bootstrap_servers, topic, events)
            await wait_for(lambda: unibo.sandbox.total_unique > 0, 30, "delivery under way")
            gateway.stop()

        asyncio.get_running_loop().create_task(later())

    with capture_logs() as logs:
        gateway = await _run_until_it_fails(tree, stop_when_busy)
    assert _failures(gateway, "lane") >= 1
    assert any(line["event"] == "background task failed" and line["task"] == "lane" for line in logs)
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) < len(events)
    monkeypatch.undo()
    unibo.sandbox.faults.clear()
    async with running_gateway(tree):
        await wait_for(lambda: unibo.sandbox.total_unique >= len(events), 60, "every event after the restart")
    assert set(unibo.sandbox.unique_ids("default")) == {event["event_id"] for event in events}


async def test_a_periodic_commit_that_fails_with_a_bug_fails_the_run(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit raising a non-Kafka error does not silently stop commits: logged, counted, the run fails."""
    await produce(broker.bootstrap_servers, topic, _events(57, 20, "p-commit"))

    async def broken(self: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the commit path")

    monkeypatch.setattr(AIOKafkaConsumer, "commit", broken)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)])
    with capture_logs() as logs:
        gateway = await _run_until_it_fails(tree)
    assert _failures(gateway, "commit") == 1
    assert any(line["event"] == "background task failed" and line["task"] == "commit" for line in logs)
