"""Retry delays: full-jitter exponential backoff, with the vendor's Retry-After honoured up to a cap."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime


@dataclass(slots=True)
class FullJitterBackoff:
    """Delay before attempt n is uniform in [0, min(max, initial * 2**n)] (AWS "full jitter").

    A vendor's Retry-After wins over the jitter, but never beyond `retry_after_cap`, so a hostile or buggy header
    cannot park a pipeline for hours.
    """

    initial: float = 0.2
    maximum: float = 30.0
    retry_after_cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_cap)
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
