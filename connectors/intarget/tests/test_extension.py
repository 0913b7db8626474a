"""The InTarget extension: it waits for an unreachable store instead of failing the gateway, and stops cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from connectors.intarget.extension import FeedExtension
from connectors.intarget.tests.clock import ManualClock
from gateway import config as config_module
from gateway.extensions import ExtensionContext
from gateway.metrics import Metrics
from tests.integration.harness import free_port, http_get


def context(store: str, port: int, stopping: asyncio.Event) -> ExtensionContext:
    """An extension context for one InTarget destination."""
    resolved = config_module.parse(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"], "dlq_topic": "t.dlq"},
            "destinations": [
                {"name": "intarget", "connector": "intarget", "store": store,
                 "feed": {"listen": f"127.0.0.1:{port}", "token": "t"}}
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
