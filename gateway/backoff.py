"""Retry delays: full-jitter exponential backoff, with the vendor's Retry-After honoured between a floor and a cap."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

RETRY_AFTER_JITTER = 0.2
"""At most this share of a Retry-After delay is added at random."""


@dataclass(slots=True)
class FullJitterBackoff:
    """Delay before attempt n is uniform in [0, min(max, initial * 2**n)] (AWS "full jitter").

    A vendor's Retry-After wins over the exponential delay, but never beyond `retry_after_cap`, so a hostile or
    buggy header cannot park a pipeline for hours, and never below `initial`, so `Retry-After: 0` (or an HTTP date
    in the past, from clock skew) cannot make a hot loop. Up to RETRY_AFTER_JITTER of it is added at random, so
    lanes told the same Retry-After do not all come back at the same instant.
    """

    initial: float = 0.2
    maximum: float = 30.0
    retry_after_cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based); always at least `initial` with a Retry-After."""
        if retry_after is not None and retry_after >= 0:
            base = max(self.initial, min(retry_after, self.retry_after_cap))
            return base + self.rng.uniform(0.0, base * RETRY_AFTER_JITTER)
        ceiling = min(self.maximum, self.initial * (2 ** min(attempt, 62)))
        return self.rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date; None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
