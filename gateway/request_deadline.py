"""Adaptive request timeouts: a vendor request's deadline from the destination's recent response times, capped."""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable

REFRESH_EVERY = 16
"""Answers between two recomputations of the percentile: between them it holds still."""


class LatencyWindow:
    """The last `size` response times in a fixed ring, and a high percentile of them (nearest rank).

    The samples are also kept in order: adding one moves it into place (and the one it replaces out) by bisection,
    so the window is never sorted whole. The percentile is read off that order every REFRESH_EVERY samples, and at
    once when `refresh` is asked for.
    """

    __slots__ = ("_next", "_ordered", "_percentile", "_ring", "_since_refresh", "_size", "_value")

    def __init__(self, size: int, percentile: float) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        if not 0 < percentile <= 100:
            raise ValueError("percentile must be in (0, 100]")
        self._size = size
        self._percentile = percentile
        self._ring: list[float] = []
        self._ordered: list[float] = []  # the ring's samples, ascending
        self._next = 0
        self._since_refresh = 0
        self._value: float | None = None

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, seconds: float, *, refresh: bool = False) -> bool:
        """Record one sample (the oldest one drops out once the ring is full); True when the percentile was
        recomputed, which happens every REFRESH_EVERY samples or when `refresh` asks for it."""
        if len(self._ring) < self._size:
            self._ring.append(seconds)
        else:
            del self._ordered[bisect_left(self._ordered, self._ring[self._next])]
            self._ring[self._next] = seconds
        insort(self._ordered, seconds)
        self._next = (self._next + 1) % self._size
        self._since_refresh += 1
        if refresh or self._since_refresh >= REFRESH_EVERY or self._value is None:
            self._recompute()
            return True
        return False

    @property
    def percentile(self) -> float | None:
        """The percentile as of the last recomputation; None before the first sample."""
        return self._value

    def _recompute(self) -> None:
        ordered = self._ordered
        rank = max(1, math.ceil(self._percentile / 100 * len(ordered)))  # nearest rank: 1-based
        self._value = ordered[rank - 1]
        self._since_refresh = 0


class RequestDeadline:
    """The timeout of a destination's next request: `cap` until `min_samples` answers were seen, then
    `factor` x the window's percentile, never below `floor` nor above `cap`.

    Only answered requests (2xx) are samples. A request cut by the adaptive deadline is recorded as a sample equal to
    that deadline, so a vendor that became slow for every request lifts the deadline (by `factor` each time such
    samples pass the percentile) instead of having every request cut, until the cap.
    """

    __slots__ = ("_adaptive", "_cap", "_current", "_factor", "_floor", "_min_samples", "_on_change", "_window")

    def __init__(
        self,
        cap: float,
        *,
        floor: float,
        factor: float,
        percentile: float,
        window: int,
        min_samples: int,
        enabled: bool = True,
        on_change: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._cap = cap
        self._floor = floor
        self._factor = factor
        self._min_samples = min_samples
        self._adaptive = enabled
        self._window = LatencyWindow(window, percentile)
        self._current = cap
        self._on_change = on_change
        on_change(cap)

    @property
    def current(self) -> float:
        """Seconds the next request may take."""
        return self._current

    @property
    def cap(self) -> float:
        """The configured timeout: no request ever waits longer."""
        return self._cap

    def answered(self, seconds: float) -> None:
        """A request got a 2xx answer after `seconds`."""
        if self._adaptive and self._window.add(seconds, refresh=len(self._window) + 1 == self._min_samples):
            self._update()

    def timed_out(self, deadline: float) -> None:
        """A request was cut at `deadline` seconds without an answer."""
        if self._adaptive and deadline < self._cap:
            self._window.add(deadline, refresh=True)
            self._update()

    def _update(self) -> None:
        value = self._window.percentile
        if value is None or len(self._window) < self._min_samples:
            deadline = self._cap
        else:
            deadline = min(self._cap, max(self._floor, self._factor * value))
        if deadline != self._current:
            self._current = deadline
            self._on_change(deadline)
