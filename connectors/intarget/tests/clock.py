"""A store clock that tests move by hand, so many closed windows take no real time."""

from __future__ import annotations

from dataclasses import dataclass

START = 1_780_000_000  # 2026-05-28 20:26:40 UTC


@dataclass
class ManualClock:
    """A store clock the test moves."""

    now: float = START + 0.5

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move forward (or back, to prove stamps never decrease)."""
        self.now += seconds
