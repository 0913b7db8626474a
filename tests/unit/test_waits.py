"""Bounded waits keep a cancellation that arrives in the same loop turn as the answer (asyncio.wait_for on 3.11 drops
it, and a shutdown then waited forever for a side task that ran on: the flaky `--workers` stop seen in CI)."""

from __future__ import annotations

import ast
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gateway.kafka_clients import within
from gateway.waits import bounded, wait_event

ROOT = Path(__file__).resolve().parents[2]


async def _cancelled_as_answered(wait: Callable[[asyncio.Future[int]], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
    """A task waiting on `wait(answer)`, cancelled in the very turn its answer arrives; the task, once done."""
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(wait(answer))
    for _ in range(3):
        await asyncio.sleep(0)  # the task is now waiting
    answer.set_result(1)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    return task


async def test_bounded_keeps_a_cancellation_that_arrives_with_the_answer() -> None:
    async def answered(answer: asyncio.Future[int]) -> int:
        return await answer

    task = await _cancelled_as_answered(lambda answer: bounded(5, answered(answer)))
    assert task.cancelled()


async def test_within_keeps_a_cancellation_that_arrives_with_the_answer() -> None:
    async def answered(answer: asyncio.Future[int]) -> int:
        return await answer

    task = await _cancelled_as_answered(lambda answer: within(5, answered(answer)))
    assert task.cancelled()


async def test_wait_event_keeps_a_cancellation_that_arrives_as_the_event_is_set() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_event(event, 5))
    for _ in range(3):
        await asyncio.sleep(0)
    event.set()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()


async def test_the_race_is_real_with_asyncio_wait_for() -> None:
    """The checks above can fail: the same race through asyncio.wait_for loses the cancellation before 3.12."""

    async def answered(answer: asyncio.Future[int]) -> int:
        return await answer

    task = await _cancelled_as_answered(lambda answer: asyncio.wait_for(answered(answer), 5))
    assert task.cancelled() is (sys.version_info >= (3, 12))


async def test_bounded_and_wait_event_still_time_out() -> None:
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await bounded(0.01, never)
    assert never.cancelled()
    assert await wait_event(asyncio.Event(), 0.01) is False
    event = asyncio.Event()
    event.set()
    assert await wait_event(event, 0) is True


def test_no_shipped_code_uses_asyncio_wait_for() -> None:
    """gateway/, connectors/ and devkit/ (tests aside) wait through gateway.waits, never asyncio.wait_for."""
    found = []
    for package in ("gateway", "connectors", "devkit"):
        for path in (ROOT / package).rglob("*.py"):
            if "tests" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr == "wait_for" and _is_asyncio(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def _is_asyncio(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "asyncio"
