"""A 1M-row window streams with flat memory: the serving process's RSS grows far less than the window's size."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from connectors.intarget.formats import stamp_text
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from tests.integration.harness import GatewayProcess, gateway_config, http_get, wait_for, write_config
from tests.integration.intarget import TOKEN, StoreBackend, fill_logins, intarget_destination, store_backend

ROWS = 1_000_000
MARKER = b'"is_success":'  # once per served login row
STAMP = 1_780_000_000
RSS_GROWTH_BOUND = 96 * 1024 * 1024  # the JSON body alone is ~250 MB; a buffered window would pass this many times


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """The store on each backend."""
    async for found in store_backend(request.param, tmp_path):
        yield found


@pytest.mark.chaos
async def test_a_million_row_window_streams_with_bounded_memory(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend, tmp_path: Path
) -> None:
    """The gateway process serves a 1,000,000-row JSON window; its RSS grows by less than a bound that buffering
    the window (rows or body) would exceed."""
    await fill_logins(backend, ROWS, STAMP)
    feed_port, http_port = free_port(), free_port()
    tree = gateway_config(
        broker.bootstrap_servers, topic, [intarget_destination(backend.url, feed_port)], http_port=http_port
    )
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    process.start()
    try:

        async def ready() -> bool:
            return (await http_get(f"http://127.0.0.1:{http_port}/readyz"))[0] == 200

        await wait_for(ready, 60, "the gateway process to be ready")
        assert process.process is not None
        serving = psutil.Process(process.process.pid)
        url = f"http://127.0.0.1:{feed_port}/intarget/logins"
        params = {"from": stamp_text(STAMP), "to": stamp_text(STAMP + 1), "format": "json"}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        baseline = serving.memory_info().rss
        peak = baseline
        received = 0
        rows = 0
        async with aiohttp.ClientSession() as session, session.get(url, params=params, headers=headers) as response:
            assert response.status == 200
            last_sample = 0.0
            tail = b""  # a marker may straddle two chunks; it is longer than this carried tail, so none counts twice
            async for chunk in response.content.iter_chunked(1 << 16):
                received += len(chunk)
                window = tail + chunk
                rows += window.count(MARKER)
                tail = window[-(len(MARKER) - 1) :]
                if time.monotonic() - last_sample > 0.05:
                    peak = max(peak, serving.memory_info().rss)
                    last_sample = time.monotonic()
                    await asyncio.sleep(0)
        peak = max(peak, serving.memory_info().rss)
    finally:
        process.stop()
    assert rows == ROWS
    assert received > 2 * RSS_GROWTH_BOUND  # the bound is meaningful: the window is far larger than it
    assert peak - baseline < RSS_GROWTH_BOUND, f"RSS grew {(peak - baseline) / 2**20:.0f} MiB"
    print(f"{backend.kind}: {ROWS} rows, {received / 2**20:.0f} MiB served, RSS +{(peak - baseline) / 2**20:.1f} MiB")
