"""ReadFailures: a failed read from Kafka is counted, logged with what to do, backed off, and over only when quiet."""

from __future__ import annotations

import random

import pytest
from aiokafka.errors import CorruptRecordException, KafkaConnectionError, UnsupportedCodecError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gateway import consumer_health
from gateway.backoff import FullJitterBackoff
from gateway.consumer_health import ReadFailures, hint
from gateway.metrics import DestinationMetrics, Metrics


class _Ceiling(random.Random):
    """Jitter that always picks the ceiling, so the growth of the backoff shows."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_each_failure_is_counted_logged_and_backed_off_more_each_time() -> None:
    """The delay ceiling doubles (never a hot loop), the metric counts by class, and the log names the library."""
    metrics = Metrics(CollectorRegistry())
    backoff = FullJitterBackoff(initial=0.5, maximum=10.0, rng=_Ceiling())
    failures = ReadFailures("unibo", DestinationMetrics(metrics, "unibo"), backoff)
    with capture_logs() as logs:
        delays = [
            failures.failed(UnsupportedCodecError("Libraries for lz4 compression codec not found")) for _ in range(6)
        ]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    labels = {"destination": "unibo", "error": "UnsupportedCodecError"}
    assert metrics.registry.get_sample_value("gateway_consumer_errors_total", labels) == 6
    assert failures.error is not None and "lz4" in failures.error
    assert all("cramjam" in line["hint"] and line["log_level"] == "error" for line in logs)


def test_a_failure_is_over_only_after_reads_stay_quiet_past_the_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that succeed between two failed fetches do not clear it; quiet reads past the retry do."""
    now = [100.0]
    monkeypatch.setattr("gateway.consumer_health.time.monotonic", lambda: now[0])
    failures = ReadFailures("unibo", DestinationMetrics(Metrics(CollectorRegistry()), "unibo"))
    delay = failures.failed(KafkaConnectionError())
    now[0] += delay + 1
    failures.succeeded()
    assert failures.error is not None
    now[0] += consumer_health.QUIET_AFTER_RETRY
    failures.succeeded()
    assert failures.error is None


def test_the_hint_names_what_to_do() -> None:
    """Codec, corrupt batch and anything else each get their own advice."""
    assert "cramjam" in hint(UnsupportedCodecError())
    assert "kafka-dump-log" in hint(CorruptRecordException())
    assert "reachable" in hint(KafkaConnectionError())
