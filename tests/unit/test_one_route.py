"""`gateway run`, `gateway replay` and `gateway map` route a record the same way: the same verdict for every kind of
message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from connectors.unibo import UniboConnector
from connectors.unibo.config import UniboOptions
from connectors.unibo.mapping import map_event
from gateway import binding, registry
from gateway.connector import VendorRecord
from gateway.delivery_stage import DeliveryStage
from gateway.destination import ResolvedConfig
from gateway.dry_run import DryRun, numbered_events
from gateway.events import Event
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offsets import PartitionOffsets
from gateway.pipeline import Pipeline
from gateway.replay import Replay
from gateway.replay_records import ReplaySelection


class CrashingUnibo(UniboConnector):
    """Unibo with a mapping bug on one event."""

    name = "crashing-unibo"

    @staticmethod
    def map(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
        if event.event_id == "crash":
            raise KeyError("a connector bug")
        return map_event(event, options)


CRASHING = CrashingUnibo()


def _event(event_id: str, type_: str = "deposit", brand: str = "casino-a", **fields: Any) -> bytes:
    money = {"transaction_id": f"tx-{event_id}", "amount": "10", "currency": "EUR"}
    base = {"event_id": event_id, "type": type_, "occurred_at": "2026-03-01T12:00:00Z", "player_id": "p-1"}
    return orjson.dumps({**base, "brand": brand, **money, **fields})


ZERO_WIN = {"round_id": "r", "game_id": "g", "kind": "win", "amount": "0"}
CASES: dict[str, tuple[bytes, str]] = {
    "routed": (_event("ok"), "queued 1"),
    "unknown brand": (_event("stranger", brand="casino-z"), "dead letter unknown_brand"),
    "type not taken": (_event("out", type_="withdrawal"), "not taken"),
    "mapped to nothing": (_event("zero", type_="gameround", **ZERO_WIN), "not taken"),
    "not json": (b"{not json", "dead letter invalid_json"),
    "connector bug": (_event("crash"), "dead letter mapping_error"),
}


@pytest.fixture
def config() -> Iterator[ResolvedConfig]:
    """One Unibo-like destination taking deposits and game rounds of brand casino-a only."""
    registry.get.cache_clear()
    registry.available.cache_clear()
    registry.BUILTIN["crashing-unibo"] = f"{__name__}:CRASHING"
    destination = {
        "name": "unibo",
        "connector": "crashing-unibo",
        "base_url": "http://127.0.0.1:1",
        "credentials": {"casino-a": {"api_key": "key-of-casino-a"}},
        "events": ["deposit", "gameround"],
        "batch": {"linger_ms": 10**6},
    }
    tree = {"kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "dlq_topic": "t.dlq"}}
    try:
        yield binding.parse({**tree, "destinations": [destination]}, env={})
    finally:
        del registry.BUILTIN["crashing-unibo"]
        registry.get.cache_clear()
        registry.available.cache_clear()


def _message(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> SimpleNamespace:
    headers = headers or []
    return SimpleNamespace(topic="t", partition=0, offset=0, key=b"p-1", value=value, headers=headers, timestamp=0)


def _queued(stage: DeliveryStage) -> int:
    return sum(len(lane.batcher) for lane in stage.lanes())


class DeadLetters:
    """The pipeline's dead-letter writer and the replay's write-back, noting each reason."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def write(self, message: Any, destination: str, reason: str, *_: Any) -> bool:
        self.reasons.append(reason)
        return False

    async def send(self, message: Any, headers: list[tuple[str, bytes]], destination: str) -> None:
        self.reasons.append(dict(headers)["gateway-reason"].decode())


async def _pipeline_verdict(config: ResolvedConfig, value: bytes) -> str:
    dead_letters = DeadLetters()
    destination = config.destinations[0]
    pipeline = Pipeline(destination, config.gateway.kafka, dead_letters, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    offsets = PartitionOffsets()
    pipeline.ingest(TopicPartition("t", 0), offsets, _message(value), 0.0, 0.0)
    await asyncio.gather(*pipeline._side_tasks)  # dead letters being written
    try:
        return _verdict(dead_letters, pipeline.filtered_pending == 1, _queued(pipeline._stage))
    finally:
        await pipeline._cancel_workers()
        pipeline._dead_letter_log.flush()  # as a pipeline's stop does: no window left open on the shared loop


async def _replay_verdict(config: ResolvedConfig, value: bytes) -> str:
    dead_letters = DeadLetters()
    replay = Replay(config, ReplaySelection("unibo"))
    stage = replay._stage = DeliveryStage(
        config.destinations[0], DestinationMetrics(replay.metrics, "unibo"), replay._dead_letter_items
    )
    replay._writer = dead_letters  # type: ignore[assignment]
    letter = _message(value, [("gateway-destination", b"unibo"), ("gateway-reason", b"rejected")])
    replay._take(TopicPartition("t.dlq", 0), letter)
    await asyncio.gather(*replay._tasks)  # write-backs of records that failed again, and their settles
    try:
        return _verdict(dead_letters, replay.summary.skipped_not_taken == 1, _queued(stage))
    finally:
        await stage.stop()


async def _dry_run_verdict(config: ResolvedConfig, value: bytes) -> str:
    dry_run = DryRun(config.destinations[0])
    try:
        [(line, parsed)] = list(numbered_events([value]))
        mapped = await dry_run.map(line, parsed)
    finally:
        await dry_run.close()
    if mapped.reason is not None:
        return f"dead letter {mapped.reason}"
    return f"queued {mapped.routed}" if mapped.routed else "not taken"


def _verdict(dead_letters: DeadLetters, not_taken: bool, queued: int) -> str:
    if dead_letters.reasons:
        return "dead letter " + ",".join(dead_letters.reasons)
    return "not taken" if not_taken else f"queued {queued}"


@pytest.mark.parametrize("case", list(CASES))
async def test_run_replay_and_map_give_a_message_the_same_verdict(config: ResolvedConfig, case: str) -> None:
    """Decode, type filter, brand to tenant and map are one route (gateway.routing): what the pipeline dead-letters,
    filters or queues, a replay fails again, leaves untaken or queues alike, and `gateway map` says so."""
    value, expected = CASES[case]
    assert await _pipeline_verdict(config, value) == expected
    assert await _replay_verdict(config, value) == expected
    assert await _dry_run_verdict(config, value) == expected


async def test_an_unexpected_decoding_failure_costs_one_message(
    config: ResolvedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should decoding ever fail with something other than an EventError (a bug), that message is dead-lettered as
    invalid_event, logged, and the route goes on; it never escapes into the pipeline."""

    def broken(raw: bytes | None) -> Event:
        raise TypeError("a decoder bug")

    monkeypatch.setattr("gateway.routing.decode", broken)
    assert await _pipeline_verdict(config, _event("ok")) == "dead letter invalid_event"
    monkeypatch.undo()
    assert await _pipeline_verdict(config, _event("ok")) == "queued 1"
