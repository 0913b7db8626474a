"""DeliverySummary: a destination's delivered batches are one line per tenant per interval, written by a timer."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.testing import capture_logs

from gateway.delivery_summary import DeliverySummary


async def _lines_after(logs: list[MutableMapping[str, Any]], count: int) -> None:
    for _ in range(500):
        if len(logs) >= count:
            return
        await asyncio.sleep(0.01)


async def test_the_timer_writes_one_line_per_tenant_then_sleeps_until_the_next_batch() -> None:
    """Batches of two tenants within an interval are one line each when it ends; an idle summary writes nothing more
    (no timer runs while nothing is summed); the next batch starts a new interval of its own."""
    summary = DeliverySummary(structlog.get_logger("test"), every=0.05)
    with capture_logs() as logs:
        for _ in range(300):
            summary.add("a", 3, Counter(sends=1, delivered=3))
        summary.add("b", 2, Counter(sends=2, delivered=1, dead_lettered=1, retries=1))
        assert logs == []
        await _lines_after(logs, 2)
        await asyncio.sleep(0.2)
        idle = len(logs)
        summary.add("a", 1, Counter(sends=1, delivered=1, duplicates=1))
        await _lines_after(logs, 3)
    assert idle == 2
    counts = [
        (line["tenant"], line["batches"], line["records"], line["delivered"], line["sends"], line["dead_lettered"])
        for line in logs
    ]
    assert counts == [("a", 300, 900, 900, 300, 0), ("b", 1, 2, 1, 2, 1), ("a", 1, 1, 1, 1, 0)]
    assert logs[1]["retries"] == 1 and logs[2]["duplicates"] == 1
    assert all(line["event"] == "delivered" and line["log_level"] == "info" for line in logs)
    assert all(isinstance(line["over_s"], float) for line in logs)
