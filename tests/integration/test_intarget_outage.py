"""The PostgreSQL store drops its connections mid-stream: batches are retried, nothing is lost or counted twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from connectors.intarget.formats import stamp_text
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from tests.integration.harness import gateway_config, produce, running_gateway
from tests.integration.intarget import (
    DESTINATION,
    POSTGRES_URL,
    StoreBackend,
    intarget_destination,
    rows,
    settled,
    store_backend,
)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """A PostgreSQL store in a schema of its own."""
    async for found in store_backend("postgres", tmp_path):
        yield found


async def _terminate(schema: str) -> int:
    """Kill the gateway's store sessions (only this test's, found by application name)."""
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        killed = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"event-gateway:{schema}"[:63],
        )
        return len(killed)
    finally:
        await connection.close()


@pytest.mark.chaos
async def test_store_connections_dropped_mid_stream_lose_nothing(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend
) -> None:
    """While the store's sessions are terminated repeatedly, writes are retried until every event is stored once."""
    kinds = ("login", "deposit", "gameround")
    events = [e for e in Traffic(seed=57, players=200, prefix="drop").stream(4000) if e["type"] in kinds]
    logins = {e["event_id"] for e in events if e["type"] == "login"}
    actions = Counter(e.get("session_id", e["round_id"]) for e in events if e["type"] == "gameround")
    port = free_port()
    destination = intarget_destination(backend.url, port, batch={"max_events": 100, "linger_ms": 20})
    tree = gateway_config(broker.bootstrap_servers, topic, [destination])
    async with running_gateway(tree) as running:
        killed = 0
        for start in range(0, len(events), 250):
            await produce(broker.bootstrap_servers, topic, events[start : start + 250])
            # While the chunk's writes are on their connections (a write takes 5-30 ms): a kill between writes alone
            # is healed by the pool unseen, and would leave the failure path untested.
            for _ in range(4):
                await asyncio.sleep(0.01)
                killed += await _terminate(backend.schema)
            await asyncio.sleep(0.05)
        await settled(running, len(events), 120)
        retries = running.value("gateway_delivery_retries_total", destination=DESTINATION, reason="store_unavailable")
        await asyncio.sleep(1.1)  # the last second closes
        window = ("2000-01-01 00:00:00", stamp_text(int(time.time())))
        stored_logins = [row["id"] for row in await rows(port, "logins", *window)]
        sessions = {
            s["session_id"]: s["bet_count"] + s["win_count"] for s in await rows(port, "casino_sessions", *window)
        }
    assert killed > 0 and retries > 0  # the failure path really ran
    assert sorted(stored_logins) == sorted(logins)
    assert sessions == dict(actions)
