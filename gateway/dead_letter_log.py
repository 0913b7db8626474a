"""The dead-letter log lines of one destination: at most one line per second per reason, however many are written."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import structlog

log = structlog.get_logger("gateway.pipeline")

WINDOW: Final = 1.0
"""Seconds a reason's first line covers: the dead letters after it in the window are summed into one line."""


class DeadLetterLog:
    """Logs the first dead letter of each (reason, status) at once, then one summary line per window for the rest.

    A flood of poison messages is then not capped by the speed of logging, and each line still names a source and
    the error (the window's last); the counts per reason are in `gateway_events_dead_lettered_total` as before.
    """

    def __init__(self, destination: str, window: float = WINDOW) -> None:
        self._destination = destination
        self._window = window
        self._pending: dict[tuple[str, int | None], list[Any]] = {}  # -> [count, source, detail] since the first
        self._timer: asyncio.TimerHandle | None = None

    def add(self, reason: str, status: int | None, message: Any, detail: str) -> None:
        """One dead letter written for `message`."""
        source = f"{message.topic}/{message.partition}/{message.offset}"
        key = (reason, status)
        pending = self._pending.get(key)
        if pending is not None:
            pending[0] += 1
            pending[1] = source
            pending[2] = detail
            return
        self._pending[key] = [0, source, detail]
        self._line(reason, status, 1, source, detail)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self.flush)

    def flush(self) -> None:
        """Log what the open windows summed (also at shutdown) and close them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        for (reason, status), (count, source, detail) in pending.items():
            if count:
                self._line(reason, status, count, source, detail)

    def _line(self, reason: str, status: int | None, count: int, source: str, detail: str) -> None:
        log.warning(
            "dead-lettered",
            destination=self._destination,
            reason=reason,
            status=status,
            count=count,
            source=source,
            error=detail[:300],
        )
