"""The percentile helper the benchmarks and the demo report latencies with."""

from __future__ import annotations

import math

from devkit.testbed.stats import percentile


def test_percentile_picks_the_sorted_value_at_the_share() -> None:
    """p50 of unsorted values is the middle one; p99 of 1..100 is 100; p0 is the smallest."""
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(v) for v in range(100, 0, -1)], 0.99) == 100.0
    assert percentile([5.0, 4.0], 0.0) == 4.0


def test_percentile_clamps_a_share_of_one_and_is_nan_without_values() -> None:
    """share 1.0 gives the maximum rather than an index error; no values gives NaN, not an exception."""
    assert percentile([1.0, 9.0], 1.0) == 9.0
    assert math.isnan(percentile([], 0.5))
