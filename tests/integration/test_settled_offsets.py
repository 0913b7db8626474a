"""Commit metadata on the real broker: after a kill or a rebalance, what settled above the watermark is not re-sent.

The broker here is Tansu behind the test bed's commit-metadata relay (Tansu itself drops commit metadata; Kafka keeps
it). One tenant's lane hangs at the sandbox, holding every partition's watermark, while the other tenant's records
settle above it: exactly the uneven progress that made a restart re-send thousands of delivered records.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway import binding
from gateway.offset_metadata import encode
from gateway.replay import Replay
from gateway.replay_records import ReplaySelection
from tests.integration.harness import (
    GatewayProcess,
    gateway_config,
    http_get,
    metric_value,
    produce,
    running_gateway,
    unibo_destination,
    wait_for,
    write_config,
)

FAST_KEY, SLOW_KEY = "fast-tenant-key", "slow-tenant-key"
MAX_IN_FLIGHT = 300
_counter = itertools.count()


@pytest.fixture(scope="module")
def keeping_broker() -> Iterator[EmbeddedBroker]:
    """Tansu behind the relay that keeps commit metadata, as Kafka does."""
    with EmbeddedBroker(keep_commit_metadata=True) as embedded:
        yield embedded


@pytest.fixture
async def source(keeping_broker: EmbeddedBroker) -> str:
    """A fresh 3-partition topic and its dead-letter topic."""
    name = f"settled-{next(_counter)}-{int(time.time())}"
    await keeping_broker.create_topic(name, partitions=3)
    await keeping_broker.create_topic(f"{name}.dlq", partitions=1)
    return name


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[UniboSandbox, str]]:
    """A Unibo sandbox with two tenants, `fast` and `slow`."""
    sandbox = UniboSandbox({FAST_KEY: "fast", SLOW_KEY: "slow"}, fault_seed=3)
    async with SandboxServer(sandbox.app()) as server:
        yield sandbox, server.url


def _events(seed: int, count: int) -> list[dict[str, Any]]:
    """Three players in four are the fast tenant's."""
    traffic = Traffic(seed=seed, players=400, brands=("fast", "fast", "fast", "slow"), prefix=f"s{seed}")
    return [event for event in traffic.stream(count) if unibo_takes(event)]


def _destination(url: str, max_in_flight: int = MAX_IN_FLIGHT) -> dict[str, Any]:
    return unibo_destination(
        url,
        credentials={"fast": {"api_key": FAST_KEY}, "slow": {"api_key": SLOW_KEY}},
        max_in_flight=max_in_flight,
        batch={"max_events": 50, "linger_ms": 20},
    )


def _process(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, url: str, name: str, max_in_flight: int = MAX_IN_FLIGHT
) -> GatewayProcess:
    port = free_port()
    tree = gateway_config(
        broker.bootstrap_servers, topic, [_destination(url, max_in_flight)], http_port=port, grace=2.0
    )
    process = GatewayProcess(write_config(tmp_path / f"{name}.yaml", tree), tmp_path / name)
    process.http_port = port  # type: ignore[attr-defined]
    return process


async def _metric(process: GatewayProcess, name: str) -> float:
    _, text = await http_get(f"http://127.0.0.1:{process.http_port}/metrics")  # type: ignore[attr-defined]
    return metric_value(text, name, destination="unibo") or 0.0


async def _wait_stalled(process: GatewayProcess, sandbox: UniboSandbox) -> float:
    """Wait until consumption is paused behind the hanging lane: nothing consumed and nothing delivered for 1.5 s (so
    the last commit came after the last settle); the in-flight count then."""
    await wait_for(lambda: _at_least(process, "gateway_events_consumed_total", 1), 60, "consumption to start")
    last: tuple[float, int] = (-1.0, -1)
    since = time.monotonic()
    deadline = since + 90
    while time.monotonic() - since < 1.5:
        assert time.monotonic() < deadline, "consumption never paused"
        now = (await _metric(process, "gateway_events_consumed_total"), len(sandbox.unique_ids("fast")))
        if now != last:
            last, since = now, time.monotonic()
        await asyncio.sleep(0.1)
    in_flight = await _metric(process, "gateway_in_flight_events")
    assert in_flight > 0
    return in_flight


async def _at_least(process: GatewayProcess, name: str, value: float) -> bool:
    return await _metric(process, name) >= value


@pytest.mark.chaos
async def test_kill_resends_at_most_what_was_in_flight(
    keeping_broker: EmbeddedBroker, source: str, vendor: tuple[UniboSandbox, str], tmp_path: Path
) -> None:
    """SIGKILL while one lane hangs: after the restart, only records in flight at the kill may be sent again; every
    fast record settled above the watermark is skipped, and nothing is lost."""
    sandbox, url = vendor
    events = _events(31, 4000)
    await produce(keeping_broker.bootstrap_servers, source, events)
    sandbox.faults.add(FaultPlan(kind="hang", header=f"x-api-key: {SLOW_KEY}"))
    process = _process(tmp_path, keeping_broker, source, url, "gateway")
    try:
        process.start()
        in_flight = await _wait_stalled(process, sandbox)
        settled_fast = len(sandbox.unique_ids("fast"))
        process.signal(signal.SIGKILL)
        assert await process.wait(10) == -signal.SIGKILL
        sandbox.faults.clear()
        process.start()
        await wait_for(lambda: sandbox.total_unique >= len(events), 120, "every event after the restart")
        skipped = await _metric(process, "gateway_events_skipped_settled_total")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        sandbox.faults.clear()
        process.stop()
    assert set(sandbox.unique_ids("fast")) | set(sandbox.unique_ids("slow")) == {e["event_id"] for e in events}
    duplicates = sandbox.tenant("fast").duplicates + sandbox.tenant("slow").duplicates
    print(f"\nkill: {in_flight:.0f} in flight, {settled_fast} fast settled, {duplicates} re-sent, {skipped} skipped")
    assert duplicates <= in_flight
    assert sandbox.tenant("fast").duplicates == 0
    assert skipped >= settled_fast * 0.9  # the settled records above the watermark (a few may sit below it)


@pytest.mark.chaos
async def test_rebalance_skips_what_the_first_replica_settled(
    keeping_broker: EmbeddedBroker, source: str, vendor: tuple[UniboSandbox, str], tmp_path: Path
) -> None:
    """A second replica joining takes partitions whose watermark a hanging lane holds: it skips the records the
    first replica settled above it (named in the revocation commit) and re-sends none of them."""
    sandbox, url = vendor
    events = _events(32, 3000)
    await produce(keeping_broker.bootstrap_servers, source, events)
    sandbox.faults.add(FaultPlan(kind="hang", header=f"x-api-key: {SLOW_KEY}"))
    # A bound above the whole stream: the first replica reads every partition before the second joins.
    first = _process(tmp_path, keeping_broker, source, url, "first", max_in_flight=len(events) + 1)
    second = _process(tmp_path, keeping_broker, source, url, "second", max_in_flight=len(events) + 1)
    try:
        first.start()
        await _wait_stalled(first, sandbox)
        second.start()
        await wait_for(lambda: _at_least(second, "gateway_events_consumed_total", 1), 90, "the second to consume")
        sandbox.faults.clear()
        await wait_for(lambda: sandbox.total_unique >= len(events), 120, "every event after the rebalance")
        skipped = await _metric(second, "gateway_events_skipped_settled_total")
        for process in (first, second):
            process.signal(signal.SIGTERM)
        assert await first.wait(40) == 0
        assert await second.wait(40) == 0
    finally:
        sandbox.faults.clear()
        first.stop()
        second.stop()
    assert set(sandbox.unique_ids("fast")) | set(sandbox.unique_ids("slow")) == {e["event_id"] for e in events}
    print(f"\nrebalance: second replica skipped {skipped}, fast duplicates {sandbox.tenant('fast').duplicates}")
    assert sandbox.tenant("fast").duplicates == 0
    assert skipped > 0


async def test_unreadable_metadata_falls_back_to_the_watermark(
    keeping_broker: EmbeddedBroker, source: str, vendor: tuple[UniboSandbox, str]
) -> None:
    """Damaged, foreign and stale metadata in the group's commits is ignored and counted: every record above the
    committed offsets is delivered, none is skipped."""
    sandbox, url = vendor
    events = [e for e in _events(33, 600) if e.get("brand") == "fast"]
    await produce(keeping_broker.bootstrap_servers, source, events)
    tree = gateway_config(keeping_broker.bootstrap_servers, source, [_destination(url)])
    group = f"gw-{source}.unibo"
    planted = {
        0: "gw1r:AAAAAAAAAAAA",  # our prefix, damaged
        1: "offsets set by another tool",
        2: encode(7, [(8, 10_000)]),  # valid, but for another committed offset: an operator moved the offset
    }
    await _commit(keeping_broker.bootstrap_servers, group, source, {p: (0, text) for p, text in planted.items()})
    async with running_gateway(tree) as gateway:
        await wait_for(lambda: sandbox.total_unique >= len(events), 60, "every event")
        ignored = {
            reason: gateway.value("gateway_offset_metadata_ignored_total", destination="unibo", reason=reason)
            for reason in ("corrupt", "foreign", "stale")
        }
        skipped = gateway.value("gateway_events_skipped_settled_total", destination="unibo")
    assert set(sandbox.unique_ids("fast")) == {e["event_id"] for e in events}
    assert ignored == {"corrupt": 1, "foreign": 1, "stale": 1}
    assert skipped == 0


async def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, tuple[int, str]]) -> None:
    """Commit offsets with metadata for `group`, as another tool or an older version would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in offsets]
        consumer.assign(partitions)
        await consumer.commit({TopicPartition(topic, p): value for p, value in offsets.items()})
    finally:
        await consumer.stop()


async def test_an_interrupted_replay_skips_what_it_settled_above_a_hanging_record(
    keeping_broker: EmbeddedBroker, source: str, vendor: tuple[UniboSandbox, str]
) -> None:
    """Replay commits the same metadata: stopped while one tenant's record hangs at the vendor, the next run sends
    only what the first did not settle, and none of the other tenant's records twice."""
    sandbox, url = vendor
    events = _events(34, 400)
    dlq = f"{source}.dlq"
    await _dead_letters(keeping_broker.bootstrap_servers, dlq, events)
    sandbox.faults.add(FaultPlan(kind="hang", header=f"x-api-key: {SLOW_KEY}"))
    tree = gateway_config(keeping_broker.bootstrap_servers, source, [_destination(url)], grace=1.0)
    stopping = asyncio.Event()
    replay = Replay(binding.parse(tree, env={}), ReplaySelection("unibo"))
    task = asyncio.create_task(replay.run(stopping))
    fast = {e["event_id"] for e in events if e["brand"] == "fast"}
    await wait_for(lambda: len(sandbox.unique_ids("fast")) >= len(fast), 60, "the fast tenant's records")
    stopping.set()
    first = await asyncio.wait_for(task, 60)
    sandbox.faults.clear()
    assert first.interrupted
    again = Replay(binding.parse(tree, env={}), ReplaySelection("unibo"))
    second = await asyncio.wait_for(again.run(asyncio.Event()), 60)
    assert set(sandbox.unique_ids("fast")) | set(sandbox.unique_ids("slow")) == {e["event_id"] for e in events}
    assert sandbox.tenant("fast").duplicates == 0
    assert second.already_settled >= len(fast) * 0.9  # those above the first hanging record
    assert not second.interrupted


async def _dead_letters(bootstrap: str, dlq: str, events: list[dict[str, Any]]) -> None:
    """Write events to the DLQ as the gateway's dead letters for `unibo`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for index, event in enumerate(events):
            headers = [
                ("gateway-destination", b"unibo"),
                ("gateway-reason", b"rejected"),
                ("gateway-source", f"player-events/0/{index}".encode()),
            ]
            key, value = message(event)
            await producer.send(dlq, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()
