"""DeadLetterLog: a flood of dead letters is logged as one line at once and one summary per window, per reason."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from structlog.testing import capture_logs

from gateway.dead_letter_log import DeadLetterLog


def _message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="events", partition=2, offset=offset)


async def test_a_flood_is_one_line_at_once_and_one_summary_per_window_for_each_reason() -> None:
    """1,000 poison messages and 3 refusals in one window: two lines per reason, counting every dead letter and naming
    the first and the last source; a dead letter after the window starts a new one with a line at once."""
    lines = DeadLetterLog("unibo", window=0.05)
    with capture_logs() as logs:
        for offset in range(1000):
            lines.add("invalid_json", None, _message(offset), f"not JSON at {offset}")
        for offset in range(3):
            lines.add("rejected", 422, _message(2000 + offset), "amount: bad")
        await asyncio.sleep(0.2)
        lines.add("invalid_json", None, _message(5000), "not JSON again")
        lines.flush()
    seen = [(line["reason"], line["count"], line["source"]) for line in logs]
    assert seen == [
        ("invalid_json", 1, "events/2/0"),
        ("rejected", 1, "events/2/2000"),
        ("invalid_json", 999, "events/2/999"),
        ("rejected", 2, "events/2/2002"),
        ("invalid_json", 1, "events/2/5000"),
    ]
    assert all(line["event"] == "dead-lettered" and line["destination"] == "unibo" for line in logs)
    assert logs[2]["error"] == "not JSON at 999"
    assert logs[3]["status"] == 422
