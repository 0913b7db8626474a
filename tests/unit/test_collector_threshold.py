"""The collector's young threshold grows with the pipelines a process runs, each with its own in-flight bound."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.app import YOUNG_PER_PIPELINE, tune_garbage_collector


@pytest.fixture
def collector() -> Iterator[list[int]]:
    """The generation of each collection started while the test runs; the collector's state restored after."""
    thresholds = gc.get_threshold()
    started: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(count)
    try:
        yield started
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def fill(records: int) -> list[list[object]]:
    """Records in flight as the collector sees them: four tracked objects each (the lists and the tuple; a dict of
    atomic values is not tracked), all kept alive."""
    return [[{"offset": i}, [i], (i, [])] for i in range(records)]


@pytest.mark.parametrize("pipelines", [1, 3])
def test_the_in_flight_records_of_every_pipeline_fill_without_a_young_collection(
    collector: list[int], pipelines: int
) -> None:
    tune_garbage_collector(pipelines)
    assert gc.get_threshold()[0] == YOUNG_PER_PIPELINE * pipelines
    collector.clear()  # the full collection tune_garbage_collector runs itself
    # Each pipeline's share, 140,000 tracked objects, stays under its 200,000; three of them are 420,000.
    held = [fill(35_000) for _ in range(pipelines)]
    assert collector == [], "a young collection walked the records in flight"
    assert sum(map(len, held)) == 35_000 * pipelines


def test_one_pipelines_threshold_collects_under_three_pipelines_records(collector: list[int]) -> None:
    # What happened before the threshold grew: three destinations filling their bounds met a young collection.
    tune_garbage_collector(1)
    collector.clear()
    held = [fill(35_000) for _ in range(3)]
    assert 0 in collector
    assert len(held) == 3
