"""Suite-wide: ordering for pytest-xdist (each worker's share starts with its slow tests, the quick rest fills gaps),
and logging as it was before each test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


def _rank(item: pytest.Item) -> int:
    """0 for chaos tests (the longest), 1 for other integration tests, 2 for the quick rest."""
    if item.get_closest_marker("chaos") is not None:
        return 0
    return 1 if "/integration/" in item.path.as_posix() else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deal the tests to the workers round-robin, slowest rank first, and lay the shares end to end.

    `--dist worksteal` hands each worker a contiguous slice of this order, so each slice then starts with its own
    chaos tests: none of them waits behind another on one worker, or starts last. Every worker computes the same
    order (xdist requires it). Without xdist this is a plain stable sort by rank."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    ranked = sorted(items, key=_rank)
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for index, item in enumerate(ranked):
        shares[index % workers].append(item)
    items[:] = [item for share in shares for item in share]


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """End each test with structlog's configuration and the standard library's levels and handlers as they were.

    A command run in process configures logging for itself (the devkit's producer and `gateway replay` at WARNING),
    and a later test that captures INFO lines then saw none: test_delivery_summary failed after test_producer_kit,
    an order pytest-xdist's work stealing sometimes makes."""
    config = structlog.get_config()
    processors = list(config["processors"])
    root, kafka = logging.getLogger(), logging.getLogger("aiokafka")
    levels, handlers = (root.level, kafka.level), root.handlers[:]
    yield
    current = structlog.get_config()["processors"]
    current[:] = processors  # the same list, refilled, as structlog's capture_logs does: bound loggers may hold it
    structlog.configure(**{**config, "processors": current})
    root.setLevel(levels[0])
    kafka.setLevel(levels[1])
    root.handlers[:] = handlers
