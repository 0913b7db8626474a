"""Enable3 integration-test support: the sandbox fixture, a destination, and what Enable3 should receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.server import SandboxServer

ENABLE3_KEY = "test-enable3-key-0123"
MISSION_TYPES = frozenset({"deposit", "withdrawal", "gameround", "login", "custom"})


@dataclass
class RunningEnable3:
    """An Enable3 sandbox served on a free port."""

    sandbox: Enable3Sandbox
    url: str


@pytest.fixture
async def enable3() -> AsyncIterator[RunningEnable3]:
    """An Enable3 sandbox accepting ENABLE3_KEY for tenant `default`."""
    sandbox = Enable3Sandbox({ENABLE3_KEY: "default"}, fault_seed=1)
    async with SandboxServer(sandbox.app()) as server:
        yield RunningEnable3(sandbox, server.url)


def enable3_destination(url: str, name: str = "enable3", key: str = ENABLE3_KEY, **extra: Any) -> dict[str, Any]:
    """An Enable3 destination pointing at a sandbox, with fast retries so tests stay short."""
    destination: dict[str, Any] = {
        "name": name,
        "connector": "enable3",
        "base_url": url,
        "credentials": {"default": {"api_key": key}},
        "concurrency": 16,
        "retry": {"initial": 0.05, "max": 0.5, "retry_after_cap": 5.0, "halt_probe": 0.5},
        "timeout": 2.0,
    }
    destination.update(extra)
    return destination


def mission_ids(events: list[dict[str, Any]]) -> list[str]:
    """The ids Enable3's event endpoint should get, by the vendor rules (independent of the connector's code)."""
    ids = []
    for event in events:
        kind = event["type"]
        if kind not in MISSION_TYPES:
            continue
        if kind in ("deposit", "withdrawal") and event.get("status", "success") != "success":
            continue
        if kind == "login" and not event.get("success", True):
            continue
        ids.append(event["event_id"])
    return ids
