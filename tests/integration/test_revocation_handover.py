"""Revocation with batches in flight: a per-record connector stops sending a revoked partition before its next request,
so two replicas never send the same partition at once, and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, message
from gateway import binding
from gateway.app import Gateway
from gateway.http_client import HttpTransport
from tests.integration.enable3_support import enable3_destination, mission_ids
from tests.integration.harness import gateway_config, produce, wait_for

KEY_A = "replica-a-key-0123456789"
KEY_B = "replica-b-key-0123456789"


@dataclass
class Sent:
    """One request to Enable3: which replica (by its key), for which player, when it started and ended."""

    replica: str
    player: str
    started: float
    ended: float


@contextlib.asynccontextmanager
async def replica(tree: dict[str, Any]) -> AsyncIterator[Gateway]:
    """A gateway replica in this process, stopped (and drained) when the block ends."""
    gateway = Gateway(binding.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    try:
        await wait_for(lambda: task.done() or (bool(gateway.pipelines) and gateway.pipelines[0].joined), 30, "join")
        yield gateway
    finally:
        gateway.stop()
        await asyncio.wait_for(task, 60)


@pytest.mark.chaos
async def test_a_revoked_partition_is_not_sent_by_two_replicas_at_once(
    broker: EmbeddedBroker, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica A is mid-batch (one request per record, each slow) when replica B joins. After A's revocation wait
    it sends none of the partitions B took over while B sends them; every event reaches Enable3."""
    events = list(Traffic(seed=61, players=40, prefix="handover").stream(400))
    expected = set(mission_ids(events))
    placed = await produce(broker.bootstrap_servers, topic, events)
    keys = [message(event)[0] for event in events]
    partition_of = {key.decode(): partition for key, (partition, _) in zip(keys, placed, strict=True) if key}
    sandbox = Enable3Sandbox({KEY_A: "default", KEY_B: "default"}, fault_seed=1)
    sandbox.faults.add(FaultPlan(kind="slow", delay=0.6))  # a 50-record batch takes 30 s: far past the 10 s wait
    sent: list[Sent] = []
    original = HttpTransport.request

    async def observed(self: HttpTransport, method: str, url: str, **kwargs: Any) -> Any:
        headers: Mapping[str, str] = kwargs.get("headers") or {}
        body = kwargs.get("body")
        started = time.monotonic()
        try:
            return await original(self, method, url, **kwargs)
        finally:
            parsed = orjson.loads(body) if body else None
            player = str(parsed.get("userId", "")) if isinstance(parsed, dict) else ""
            sent.append(Sent("A" if headers.get("X-API-KEY") == KEY_A else "B", player, started, time.monotonic()))

    monkeypatch.setattr(HttpTransport, "request", observed)
    async with SandboxServer(sandbox.app()) as server:

        def tree(key: str) -> dict[str, Any]:
            destination = enable3_destination(
                server.url, key=key, concurrency=4, batch={"max_events": 50, "linger_ms": 5}, timeout=5.0
            )
            return gateway_config(broker.bootstrap_servers, topic, [destination])

        async with replica(tree(KEY_A)):
            await wait_for(lambda: len(sent) >= 8, 30, "replica A sending")
            async with replica(tree(KEY_B)):
                await wait_for(lambda: any(s.replica == "B" for s in sent), 60, "replica B sending")
                sandbox.faults.clear()
                await wait_for(lambda: expected <= set(sandbox.event_ids("default")), 120, "every event at Enable3")
    b_first = min(s.started for s in sent if s.replica == "B")
    taken_over = {partition_of[s.player] for s in sent if s.replica == "B" and s.player in partition_of}
    a_late = [s for s in sent if s.replica == "A" and partition_of.get(s.player) in taken_over and s.ended > b_first]
    assert a_late == [], f"replica A still sent {len(a_late)} requests of partitions B had taken over"
