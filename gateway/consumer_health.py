"""A destination's view of Kafka: failures to read (undecodable batches, lost broker) made loud, backed off, cleared."""

from __future__ import annotations

import time

from aiokafka.errors import CorruptRecordException, KafkaError, UnsupportedCodecError

from gateway.backoff import FullJitterBackoff
from gateway.logs import destination_logger
from gateway.metrics import DestinationMetrics
from gateway.retries import Attempts

LOGGER = "gateway.pipeline"
"""Its lines are the pipeline's: it reports on the pipeline's reads and calls to Kafka."""

QUIET_AFTER_RETRY = 5.0
"""A failure counts as over once reads have gone this long past the retry without failing again."""

CODEC_HINT = (
    "a record batch uses a compression codec this process cannot decode: install the library aiokafka uses for "
    "snappy, lz4 and zstd (cramjam, via pip install 'aiokafka[lz4,snappy,zstd]'); the partition stays where it is"
)
CORRUPT_HINT = (
    "the broker returned a record batch that fails its checksum or cannot be parsed; inspect the partition with "
    "kafka-dump-log and the producer that wrote it; the partition stays where it is"
)
READ_HINT = "check that the brokers are reachable and that this consumer may read the topics"


def hint(error: BaseException) -> str:
    """What an operator should do about a failure to read from Kafka."""
    if isinstance(error, UnsupportedCodecError):
        return CODEC_HINT
    if isinstance(error, CorruptRecordException):
        return CORRUPT_HINT
    return READ_HINT


class ReadFailures:
    """Failures of one destination's consumer to read: each counted and logged with its cause and what to do, retried
    with a growing backoff (never a hot loop), and reported to readiness until reads have been quiet for a while."""

    def __init__(self, destination: str, metrics: DestinationMetrics, backoff: FullJitterBackoff | None = None) -> None:
        self._log = destination_logger(LOGGER, destination)
        self._metrics = metrics
        self._attempts = Attempts(backoff or FullJitterBackoff(initial=0.5, maximum=10.0))
        self._retry_at = 0.0
        self.error: str | None = None

    def failed(self, error: KafkaError) -> float:
        """Count and log a failed read; returns the seconds to wait before reading again."""
        delay = max(0.1, self._attempts.failed())
        self._retry_at = time.monotonic() + delay
        self.error = f"{type(error).__name__}: {error}"
        self._metrics.consumer_error(type(error).__name__).inc()
        self._log.error(
            "cannot read from Kafka; retrying",
            error=self.error,
            hint=hint(error),
            attempt=self._attempts.count,
            delay_s=round(delay, 2),
        )
        return delay

    def succeeded(self) -> None:
        """A read returned without error: once reads stayed quiet past the last retry, the failure is over."""
        if self.error is not None and time.monotonic() - self._retry_at > QUIET_AFTER_RETRY:
            self._log.info("reading from Kafka again", failed_attempts=self._attempts.count)
            self.error = None
            self._attempts.reset()


class BrokerContact:
    """Whether a destination's periodic calls to Kafka (the lag probe, commits) are answered: readiness drops while
    they are not, and the loss and the recovery are each logged once."""

    def __init__(self, destination: str, metrics: DestinationMetrics) -> None:
        self._log = destination_logger(LOGGER, destination)
        self._metrics = metrics
        self._lost_at: float | None = None

    @property
    def lost(self) -> bool:
        """True since a call failed, until one is answered."""
        return self._lost_at is not None

    def failed(self, call: str, error: KafkaError) -> None:
        """A call to Kafka failed or went unanswered within its time limit."""
        self._metrics.consumer_error(type(error).__name__).inc()
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            self._log.error(
                "lost contact with Kafka; consuming and committing resume when it answers",
                call=call,
                error=f"{type(error).__name__}: {error}",
                hint=READ_HINT,
            )

    def answered(self) -> None:
        """A call to Kafka was answered."""
        if self._lost_at is not None:
            self._log.info(
                "Kafka answers again",
                lost_for_s=round(time.monotonic() - self._lost_at, 1),
            )
            self._lost_at = None
