"""Unit tests share one event loop (pytest's asyncio loop scope is the session): what a test leaves scheduled on it
runs during a later test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.helpers import OPEN_ENGINES


@pytest.fixture(autouse=True)
async def _close_engines() -> AsyncIterator[None]:
    """Close the delivery engines each test built. One left open writes its summary lines when their 10 s end, into
    whichever test the loop runs by then (one that captures its log lines would find them there)."""
    yield
    while OPEN_ENGINES:
        await OPEN_ENGINES.pop().close()
