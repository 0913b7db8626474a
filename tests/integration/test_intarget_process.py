"""InTarget under SIGKILL: the gateway process killed mid-stream and restarted leaves no duplicate and no gap."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.intarget.formats import stamp_text
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from tests.integration.harness import (
    GatewayProcess,
    gateway_config,
    http_get,
    produce,
    wait_for,
    write_config,
)
from tests.integration.intarget import StoreBackend, intarget_destination, rows, store_backend

EPOCH = "2000-01-01 00:00:00"


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """The store on each backend."""
    async for found in store_backend(request.param, tmp_path):
        yield found


async def _produce_slowly(broker: EmbeddedBroker, topic: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 200):
        await produce(broker.bootstrap_servers, topic, events[start : start + 200])
        await asyncio.sleep(0.1)


async def _ready(port: int) -> None:
    async def ready() -> bool:
        status, _ = await http_get(f"http://127.0.0.1:{port}/readyz")
        return status == 200

    await wait_for(ready, 60, "the gateway process to be ready")


async def _full(port: int, feed: str) -> list[dict[str, Any]]:
    """Every row up to the last closed second."""
    return await rows(port, feed, EPOCH, stamp_text(int(time.time())))


@pytest.mark.chaos
async def test_sigkill_mid_stream_leaves_no_duplicate_and_no_gap(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend, tmp_path: Path
) -> None:
    """Kill -9 twice while events stream into the store; after a restart every login and transaction is there once,
    and every session counts each of its actions exactly once (a re-delivered action is never added twice)."""
    kinds = ("login", "deposit", "withdrawal", "gameround", "player")
    events = [e for e in Traffic(seed=33, players=400, prefix="kill").stream(9000) if e["type"] in kinds]
    logins = {e["event_id"] for e in events if e["type"] == "login"}
    transactions = {e["transaction_id"] for e in events if e["type"] in ("deposit", "withdrawal")}
    actions = Counter(e.get("session_id", e["round_id"]) for e in events if e["type"] == "gameround")
    feed_port, http_port = free_port(), free_port()
    destination = intarget_destination(backend.url, feed_port, batch={"max_events": 200, "linger_ms": 50})
    tree = gateway_config(broker.bootstrap_servers, topic, [destination], http_port=http_port)
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    producer = asyncio.create_task(_produce_slowly(broker, topic, events))
    try:
        for _ in range(2):
            process.start()
            await _ready(http_port)
            await wait_for(lambda: _some(feed_port), 30, "some stored rows")
            await asyncio.sleep(0.5)
            process.signal(signal.SIGKILL)
            assert await process.wait(10) == -signal.SIGKILL
        await producer
        process.start()
        await _ready(http_port)

        async def complete() -> bool:
            return len(await _full(feed_port, "logins")) >= len(logins) and sum(
                s["bet_count"] + s["win_count"] for s in await _full(feed_port, "casino_sessions")
            ) >= sum(actions.values())

        await wait_for(complete, 120, "every event stored after the kills")
        await asyncio.sleep(1.1)  # the last second closes
        stored_logins = [row["id"] for row in await _full(feed_port, "logins")]
        stored_transactions = [row["id"] for row in await _full(feed_port, "transactions")]
        sessions = {s["session_id"]: s["bet_count"] + s["win_count"] for s in await _full(feed_port, "casino_sessions")}
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        producer.cancel()
        process.stop()
    assert sorted(stored_logins) == sorted(logins)
    assert sorted(stored_transactions) == sorted(transactions)
    assert sessions == dict(actions)


async def _some(port: int) -> bool:
    try:
        return bool(await _full(port, "logins"))
    except AssertionError:
        return False
