"""The memory rounds: a full garbage collection every COLLECT_EVERY rounds, and no collection in between."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from gateway import memory


async def test_the_rounds_collect_every_generation_every_tenth_round_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A young collection each round walked every record in flight, 4-6% of a drain's CPU, for no garbage.
    monkeypatch.setenv("GATEWAY_MALLOC_TUNING", "1")
    monkeypatch.setattr(memory, "PERIOD", 0.01)
    started: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.disable()  # only the rounds' own collections are counted
    gc.callbacks.append(count)
    try:
        rounds = asyncio.create_task(memory.release_forever())
        for _ in range(3000):  # until the second full collection (round 20), within 30 s
            if len(started) >= 2:
                break
            await asyncio.sleep(0.01)
        rounds.cancel()
        with pytest.raises(asyncio.CancelledError):
            await rounds
    finally:
        gc.callbacks.remove(count)
        gc.enable()
    assert started[:2] == [2, 2]
    assert set(started) == {2}


async def test_the_rounds_do_nothing_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MALLOC_TUNING", "0")
    await asyncio.wait_for(memory.release_forever(), 1)  # returns at once rather than looping
