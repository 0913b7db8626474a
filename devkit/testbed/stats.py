"""Summary statistics shared by the benchmarks and `gateway demo`: a nearest-rank percentile."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], share: float) -> float:
    """The sorted value at index `share` (0..1) times the count, clamped to the last; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


__all__ = ["percentile"]
