"""The InTarget extension: it waits for an unreachable store instead of failing the gateway, and stops cleanly."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from connectors.intarget.extension import FeedExtension
from connectors.intarget.tests.clock import ManualClock
from devkit.testbed.ports import free_port
from gateway import binding
from gateway.extensions import ExtensionContext
from gateway.metrics import Metrics
from tests.integration.harness import http_get


def context(store: str, port: int, stopping: asyncio.Event) -> ExtensionContext:
    """An extension context for one InTarget destination."""
    resolved = binding.parse(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"], "dlq_topic": "t.dlq"},
            "destinations": [
                {"name": "intarget", "connector": "intarget", "store": store,
                 "feed": {"listen": f"127.0.0.1:{port}", "token": "t" * 16}}
            ],
        },
        env={},
    )  # fmt: skip
    return ExtensionContext(resolved.destinations[0], resolved.gateway.kafka, Metrics(CollectorRegistry()), stopping)


async def test_an_unreachable_store_is_retried_until_stopping() -> None:
    """With PostgreSQL unreachable, start() keeps retrying (no crash, no listener) and returns once stopping."""
    stopping = asyncio.Event()
    port = free_port()
    extension = FeedExtension(context("postgresql://postgres@127.0.0.1:1/test", port, stopping))
    starting = asyncio.create_task(extension.start())
    await asyncio.sleep(0.8)
    assert not starting.done()
    assert (await http_get(f"http://127.0.0.1:{port}/intarget/players"))[0] == 0  # not serving without a store
    stopping.set()
    await asyncio.wait_for(starting, 5)
    await extension.stop()


async def test_start_serves_and_stop_releases(tmp_path: Path) -> None:
    """start() opens the store and listens; stop() closes both, and may be called twice."""
    stopping = asyncio.Event()
    port = free_port()
    extension = FeedExtension(context(f"sqlite:///{tmp_path}/feeds.db", port, stopping), ManualClock())
    await extension.start()
    status, _ = await http_get(
        f"http://127.0.0.1:{port}/intarget/players?from=2026-01-01+00:00:00&to=2026-01-01+00:01:00"
    )
    assert status == 401  # up, and refusing without the token
    await extension.stop()
    await extension.stop()
    assert (await http_get(f"http://127.0.0.1:{port}/intarget/players"))[0] == 0


async def test_the_purge_runs_in_the_background(tmp_path: Path) -> None:
    """With retention set, rows older than it disappear without any request, every purge_interval."""
    from connectors.intarget.tests.test_store import read, records  # noqa: PLC0415

    stopping = asyncio.Event()
    clock = ManualClock()
    ctx = context(f"sqlite:///{tmp_path}/feeds.db", free_port(), stopping)
    settings = ctx.destination.settings.model_copy(update={"retention": {"logins": 1.0}, "purge_interval": 0.05})
    ctx = ExtensionContext(replace(ctx.destination, settings=settings), ctx.kafka, ctx.metrics, stopping)
    extension = FeedExtension(ctx, clock)
    login = {"event_id": "li-1", "type": "login", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1"}
    await extension.start()
    try:
        await extension.store.write(records(login))
        await asyncio.sleep(0.2)
        assert len(await read(extension.store, "logins")) == 1  # younger than a day: kept
        clock.advance(2 * 86400)
        for _ in range(100):
            if not await read(extension.store, "logins"):
                break
            await asyncio.sleep(0.05)
        assert await read(extension.store, "logins") == []
    finally:
        await extension.stop()
