"""DLQ replay on the real broker against the Unibo sandbox: after a fix, dead letters reach the vendor, none lost."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway import binding
from gateway.connector import ClientContext
from gateway.extensions import Extension, ExtensionContext
from gateway.replay import Replay
from gateway.replay_records import ReplaySelection, ReplaySummary
from tests.integration.conftest import UNIBO_KEY, RunningSandbox
from tests.integration.harness import (
    ROOT,
    committed,
    gateway_config,
    loop_turns_at_polls,
    polls_without_a_turn,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
    write_config,
)

OTHER_KEY = "test-other-key"


def _events(count: int, seed: int) -> list[dict[str, Any]]:
    events = Traffic(seed=seed, players=50, prefix=f"r{seed}").stream(count * 3)
    return [event for event in events if unibo_takes(event)][:count]


def _stamp(when: datetime) -> bytes:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


async def _dead_letters(
    bootstrap: str,
    dlq: str,
    values: Iterable[bytes],
    destination: str,
    reason: str = "rejected",
    failed_at: datetime | None = None,
) -> None:
    """Write records to the DLQ exactly as the gateway does (value + the headers of docs/dead-letters.md)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = []
    try:
        for index, value in enumerate(values):
            headers = [
                ("gateway-destination", destination.encode()),
                ("gateway-reason", reason.encode()),
                ("gateway-error", b"vendor answered 422"),
                ("gateway-status", b"422"),
                ("gateway-source", f"player-events/0/{index}".encode()),
                ("gateway-failed-at", _stamp(failed_at or datetime.now(UTC))),
            ]
            sent.append(await producer.send(dlq, value, key=b"k", headers=headers))  # one key: order kept
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _values(events: list[dict[str, Any]]) -> list[bytes]:
    return [message(event)[1] for event in events]


def _tree(broker: EmbeddedBroker, topic: str, url: str, **extra: Any) -> dict[str, Any]:
    return gateway_config(broker.bootstrap_servers, topic, [unibo_destination(url, **extra)])


async def _replay(tree: dict[str, Any], selection: ReplaySelection, **options: Any) -> ReplaySummary:
    replay = Replay(binding.parse(tree, env={}), selection, **options)
    return await asyncio.wait_for(replay.run(asyncio.Event()), 60)


async def test_rejected_records_are_replayed_after_the_fix_and_other_destinations_untouched(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    """Dead-lettered while the vendor rejected them, replayed by `gateway replay` after the fix: none is lost."""
    sandbox = UniboSandbox({UNIBO_KEY: "default", OTHER_KEY: "other"}, fault_seed=1)
    events = _events(200, seed=1)
    rejected = {event["event_id"] for event in events[::10]}
    sandbox.set_fail_items(rejected)
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(
            broker.bootstrap_servers,
            topic,
            [unibo_destination(server.url), unibo_destination(server.url, name="other", key=OTHER_KEY)],
        )
        async with running_gateway(tree):
            await wait_for(lambda: sandbox.total_unique >= 2 * (len(events) - len(rejected)), 60, "the good events")
            dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", expect=2 * len(rejected), timeout=30)
        assert len(dead) == 2 * len(rejected)
        sandbox.set_fail_items(())  # the vendor fixed its validation
        config_path = write_config(tmp_path / "gateway.yaml", tree)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "replay",
            "--config",
            str(config_path),
            "--destination",
            "unibo",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    output = stdout.decode()
    assert process.returncode == 0, output + stderr.decode()
    final_bar = stderr.decode().splitlines()[-1]  # the progress bar goes to stderr and ends full
    assert final_bar.startswith("[" + "#" * 30 + "]") and f" {len(dead)}/{len(dead)} read" in final_bar
    assert f"delivered      {len(rejected)}\n" in output
    assert "failed again   0" in output
    assert f"other destinations' records left alone: {len(rejected)}" in output
    assert set(sandbox.unique_ids("default")) == {event["event_id"] for event in events}
    assert set(sandbox.unique_ids("other")) == {event["event_id"] for event in events} - rejected
    assert await committed(broker.bootstrap_servers, f"gw-{topic}.unibo.replay", f"{topic}.dlq") == {0: len(dead)}
    assert len(await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1)) == len(dead)  # none written back
    again = await _replay(tree, ReplaySelection("unibo"))
    assert (again.total, again.delivered) == (0, 0)  # the replay group remembers


async def test_an_interrupted_replay_resumes_without_resending(broker: EmbeddedBroker, topic: str) -> None:
    """Stopped halfway, a replay commits only what it settled; the next run sends exactly the rest, once."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"}, fault_seed=1)
    events = _events(300, seed=2)
    await _dead_letters(broker.bootstrap_servers, f"{topic}.dlq", _values(events), "unibo")
    sandbox.faults.add(FaultPlan(kind="slow", delay=0.2))
    async with SandboxServer(sandbox.app()) as server:
        tree = _tree(broker, topic, server.url, concurrency=1, batch={"max_events": 20, "linger_ms": 0})
        stopping = asyncio.Event()
        replay = Replay(binding.parse(tree, env={}), ReplaySelection("unibo"))
        task = asyncio.create_task(replay.run(stopping))
        await wait_for(lambda: sandbox.total_unique >= 100, 60, "a third replayed")
        stopping.set()
        first = await asyncio.wait_for(task, 30)
        sandbox.faults.clear()
        done_first = sandbox.total_unique
        assert first.interrupted
        assert first.delivered == done_first < len(events)
        assert await committed(broker.bootstrap_servers, f"gw-{topic}.unibo.replay", f"{topic}.dlq") == {0: done_first}
        second = await _replay(tree, ReplaySelection("unibo"))
    assert not second.interrupted
    assert second.delivered == len(events) - done_first
    assert sandbox.unique_ids("default") == [event["event_id"] for event in events]  # in order, each once
    assert sandbox.tenant("default").duplicates == 0
    assert sandbox.stats.items_received == len(events)  # nothing was sent twice


async def test_a_replay_at_its_in_flight_bound_sends_without_lingering(broker: EmbeddedBroker, topic: str) -> None:
    """max_in_flight 50 under a ten-minute linger and 10,000-record batches: the replay stops reading at the bound, so
    no batch can fill; the lanes send what they hold and all 1,000 records are replayed, once, inside the linger."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"}, fault_seed=1)
    events = _events(1000, seed=4)
    await _dead_letters(broker.bootstrap_servers, f"{topic}.dlq", _values(events), "unibo")
    async with SandboxServer(sandbox.app()) as server:
        tree = _tree(broker, topic, server.url, max_in_flight=50, batch={"max_events": 10_000, "linger_ms": 600_000})
        summary = await _replay(tree, ReplaySelection("unibo"))
    assert (summary.total, summary.delivered, summary.interrupted) == (len(events), len(events), False)
    assert sorted(sandbox.unique_ids("default")) == sorted(event["event_id"] for event in events)
    assert sandbox.stats.items_received == len(events)


async def test_a_replay_gives_the_loop_a_turn_after_every_poll(broker: EmbeddedBroker, topic: str) -> None:
    """A replay's lanes send from the same event loop as its reads: polls of records fetched ahead come without
    suspending, so without a turn after each the lanes waited until the prefetch ran out."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"}, fault_seed=1)
    events = _events(3000, seed=6)
    await _dead_letters(broker.bootstrap_servers, f"{topic}.dlq", _values(events), "unibo")
    async with SandboxServer(sandbox.app()) as server, loop_turns_at_polls() as polls:
        summary = await _replay(_tree(broker, topic, server.url), ReplaySelection("unibo"))
    assert (summary.total, summary.delivered, summary.interrupted) == (len(events), len(events), False)
    assert sandbox.stats.items_received == len(events)
    count, held = polls_without_a_turn(polls)  # the replay's one consumer of the dead-letter topic
    assert count >= 5, polls
    assert held == [], f"{len(held)} of {count} polls followed the one before without a turn of the loop"


async def test_filters_dry_run_limit_and_from_beginning(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """--dry-run sends and commits nothing; --reason/--since skip (counted); --limit stops; the group resumes."""
    dlq = f"{topic}.dlq"
    events = _events(35, seed=3)
    old, new, brandless, others = events[:10], events[10:20], events[20:30], events[30:]
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    await _dead_letters(broker.bootstrap_servers, dlq, _values(old), "unibo", failed_at=cutoff - timedelta(days=1))
    await _dead_letters(broker.bootstrap_servers, dlq, _values(new), "unibo")
    await _dead_letters(broker.bootstrap_servers, dlq, _values(brandless), "unibo", reason="unknown_brand")
    await _dead_letters(broker.bootstrap_servers, dlq, _values(others), "enable3")
    tree = _tree(broker, topic, unibo.url)
    group = f"gw-{topic}.unibo.replay"

    dry = await _replay(tree, ReplaySelection("unibo", frozenset({"rejected"})), dry_run=True)
    assert (dry.selected, dry.skipped_by_filter, dry.other_destinations) == (20, 10, 5)
    assert dry.reasons == {"rejected": 20}
    assert "would replay   20  (rejected 20)" in dry.report()
    assert unibo.sandbox.stats.requests == 0
    assert await committed(broker.bootstrap_servers, group, dlq) == {0: None}

    limited = await _replay(tree, ReplaySelection("unibo", frozenset({"rejected"}), since=cutoff, limit=5))
    assert (limited.delivered, limited.skipped, limited.failed) == (5, 10, 0)
    assert set(unibo.sandbox.unique_ids("default")) == {event["event_id"] for event in new[:5]}
    assert await committed(broker.bootstrap_servers, group, dlq) == {0: 15}

    rest = await _replay(tree, ReplaySelection("unibo"))
    assert (rest.delivered, rest.skipped, rest.other_destinations) == (15, 0, 5)
    replayed = {event["event_id"] for event in [*new, *brandless]}
    assert set(unibo.sandbox.unique_ids("default")) == replayed  # the old ones were passed over by the filter

    again = await _replay(tree, ReplaySelection("unibo"), from_beginning=True)
    assert again.delivered == 30
    assert set(unibo.sandbox.unique_ids("default")) == replayed | {event["event_id"] for event in old}
    assert await committed(broker.bootstrap_servers, group, dlq) == {0: 35}


async def test_records_that_fail_again_go_back_with_the_attempt_counted(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Still rejected (or still not JSON): written back with gateway-attempt 2, then 3; the next replay takes them."""
    dlq = f"{topic}.dlq"
    events = _events(10, seed=4)
    still_bad = {event["event_id"] for event in events[:3]}
    await _dead_letters(broker.bootstrap_servers, dlq, [*_values(events), b"\xff not json"], "unibo")
    unibo.sandbox.set_fail_items(still_bad)
    tree = _tree(broker, topic, unibo.url)

    first = await _replay(tree, ReplaySelection("unibo"))
    assert (first.delivered, first.failed) == (7, 4)
    records = await read_topic(broker.bootstrap_servers, dlq, expect=15, timeout=20)
    written_back = records[11:]
    assert len(written_back) == 4
    for record in written_back:
        assert record.headers["gateway-attempt"] == "2"
        assert record.headers["gateway-destination"] == "unibo"
        assert record.headers["gateway-source"].startswith("player-events/0/")
    reasons = sorted(record.headers["gateway-reason"] for record in written_back)
    assert reasons == ["invalid_json", "rejected", "rejected", "rejected"]
    assert {r.headers["gateway-status"] for r in written_back if r.headers["gateway-reason"] == "rejected"} == {"422"}

    unibo.sandbox.set_fail_items(())
    second = await _replay(tree, ReplaySelection("unibo"))
    assert (second.total, second.delivered, second.failed) == (4, 3, 1)
    assert set(unibo.sandbox.unique_ids("default")) == {event["event_id"] for event in events}
    last = (await read_topic(broker.bootstrap_servers, dlq, expect=16, timeout=20))[-1]
    assert (last.value, last.headers["gateway-attempt"]) == (b"\xff not json", "3")


class _Store(Extension):
    """An extension part standing in for InTarget's feed store: it must be started before any send."""

    def __init__(self) -> None:
        super().__init__(shared=self)
        self.events: list[str] = []

    async def start(self) -> None:
        """Record the start."""
        self.events.append("start")

    async def stop(self) -> None:
        """Record the stop."""
        self.events.append("stop")


class _WithStore:
    """The Unibo connector plus an extension whose shared part its client receives."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.store = _Store()
        self.shared_seen: list[object] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def extension(self, context: ExtensionContext) -> Extension | None:
        """The store, for every destination."""
        return self.store

    def client(self, context: ClientContext) -> Any:
        """Unibo's client; notes what the core handed over as `shared`."""
        self.shared_seen.append(context.shared)
        self.store.events.append("client")
        return self._inner.client(context)


async def test_a_connector_extension_is_started_and_shared_with_the_client(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox
) -> None:
    """Replay builds the destination's extension, hands its shared part to the client, and stops it afterwards."""
    events = _events(5, seed=5)
    await _dead_letters(broker.bootstrap_servers, f"{topic}.dlq", _values(events), "unibo")
    resolved = binding.parse(_tree(broker, topic, unibo.url), env={})
    destination = resolved.destination("unibo")
    connector = _WithStore(destination.connector)
    object.__setattr__(destination, "connector", connector)
    summary = await asyncio.wait_for(Replay(resolved, ReplaySelection("unibo")).run(asyncio.Event()), 60)
    assert summary.delivered == len(events)
    assert connector.shared_seen == [connector.store]
    assert connector.store.events == ["start", "client", "stop"]
