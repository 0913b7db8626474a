"""Prometheus metrics shared by the worker processes of `gateway run --workers N`, aggregated on the one listener.

prometheus_client picks its value store when it is first imported: with PROMETHEUS_MULTIPROC_DIR set, every metric
value lives in a per-process file in that directory, and the supervisor's /metrics merges the files. Each gauge's
multiprocess mode says how (gateway/metrics.py): sums for what adds up across workers (in-flight events, lag), the
minimum for health (up, ready), the maximum for flags (a tenant halted in any worker). Counters and histograms are
summed. Without --workers nothing here is used, and prometheus_client keeps its in-memory values.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"


def private_directory() -> Path:
    """Create a fresh directory only this process tree uses, and point prometheus_client at it.

    Must run before prometheus_client is first imported (its value store is chosen then). A directory left by an
    earlier run, or shared with another process, would add its counts to ours: it is never reused."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the multiprocess metrics directory was set")
    path = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))  # mode 0700
    os.environ[ENVIRONMENT] = str(path)
    return path


def enabled() -> bool:
    """True when this process keeps its metric values in the shared directory."""
    from prometheus_client import values  # noqa: PLC0415 - only after the directory was chosen

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def forget_process(pid: int) -> None:
    """Drop the live gauges of a worker that exited (its counters stay: counts never go back)."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_directory(path: Path) -> None:
    """Delete the directory at exit."""
    shutil.rmtree(path, ignore_errors=True)


class AggregatedMetrics:
    """A collector merging every process's files; `before_collect` runs first (the supervisor updates its own
    gauges that are computed at scrape time, such as gateway_ready)."""

    def __init__(self, path: Path, before_collect: Callable[[], None]) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        self._merged = MultiProcessCollector(None, str(path))  # type: ignore[no-untyped-call]
        self._before_collect = before_collect

    def collect(self) -> Iterable[Metric]:
        """The merged metrics, read from the files at scrape time."""
        self._before_collect()
        return self._merged.collect()  # type: ignore[no-untyped-call,no-any-return]


def exposition_registry(path: Path, before_collect: Callable[[], None]) -> CollectorRegistry:
    """The registry /metrics serves: every process's metrics merged, and nothing else."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(AggregatedMetrics(path, before_collect))
    return registry
