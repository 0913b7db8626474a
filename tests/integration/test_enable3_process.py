"""Enable3 with the gateway as a real process: SIGKILL mid-stream and restart, with no event id missing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from tests.integration.enable3_support import (
    RunningEnable3,
    enable3,  # noqa: F401 - the fixture
    enable3_destination,
    mission_ids,
)
from tests.integration.harness import (
    GatewayProcess,
    gateway_config,
    http_get,
    produce,
    wait_for,
    write_config,
)


async def _ready(port: int) -> None:
    async def ready() -> bool:
        return (await http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 200

    await wait_for(ready, 60, "the gateway process to be ready")


def _more_than(enable3: RunningEnable3, count: int) -> Callable[[], bool]:  # noqa: F811 - the fixture's type
    return lambda: enable3.sandbox.total_events > count


async def _produce_slowly(broker: EmbeddedBroker, topic: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 400):
        await produce(broker.bootstrap_servers, topic, events[start : start + 400])
        await asyncio.sleep(0.3)


@pytest.mark.chaos
async def test_sigkill_mid_stream_then_restart_loses_no_id(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
    tmp_path: Path,
) -> None:
    """SIGKILL the gateway while events stream in; after a restart every expected id is at Enable3.

    One kill: repeated kills of the core are covered by tests/integration/test_process.py; this proves the Enable3
    client settles nothing it did not send."""
    events = list(Traffic(seed=51, players=300, prefix="kill3").stream(6000))
    expected = set(mission_ids(events))
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [enable3_destination(enable3.url)], http_port=port)
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    enable3.sandbox.faults.add(FaultPlan(kind="slow", fraction=0.1, delay=0.3))  # requests in flight when killed
    producer = asyncio.create_task(_produce_slowly(broker, topic, events))
    try:
        for _ in range(1):  # one kill mid-stream, then the restart below
            process.start()
            await _ready(port)
            await wait_for(_more_than(enable3, enable3.sandbox.total_events), 30, "deliveries by this run")
            await asyncio.sleep(0.5)
            process.signal(signal.SIGKILL)
            assert await process.wait(10) == -signal.SIGKILL
        await producer
        process.start()
        await _ready(port)
        await wait_for(lambda: enable3.sandbox.total_events >= len(expected), 120, "every event after the kills")
        process.signal(signal.SIGTERM)
        assert await process.wait(30) == 0
    finally:
        producer.cancel()
        process.stop()
    received = set(enable3.sandbox.event_ids("default"))
    assert expected - received == set(), f"missing {len(expected - received)}"
    assert received == expected
    duplicates = enable3.sandbox.tenant("default").duplicates
    print(f"\nSIGKILL: {len(expected)} delivered, {duplicates} re-sent after the kills (same ids)")
