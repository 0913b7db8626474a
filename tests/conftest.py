"""Suite-wide ordering: the slow tests first, so that under pytest-xdist none of them starts last and runs alone."""

from __future__ import annotations

import pytest


def _rank(item: pytest.Item) -> int:
    """0 for chaos tests (the longest), 1 for other integration tests, 2 for the quick rest (which fills the gaps)."""
    if item.get_closest_marker("chaos") is not None:
        return 0
    return 1 if "/integration/" in item.path.as_posix() else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable sort by rank: within a rank, collection order (and so module fixtures' reuse) is kept."""
    items.sort(key=_rank)
