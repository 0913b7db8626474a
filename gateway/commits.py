"""Offset commits with settled-offset metadata, and reading that metadata back when partitions are assigned.

Written once for the pipeline and for replay. The commit carries, per partition, the watermark and the metadata of
gateway/offset_metadata.py. A broker that refuses the metadata as too large gets plain watermark commits from then
on; one that drops it silently costs only the duplicates it would have saved.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetMetadataTooLargeError

from gateway.kafka_clients import KAFKA_CALL_TIMEOUT, within
from gateway.offset_metadata import DEFAULT_MAX_BYTES, SettledAbove, UnreadableMetadata, decode
from gateway.offsets import Commit, PartitionOffsets, note_committed, positions_to_commit
from gateway.waits import bounded

log = structlog.get_logger("gateway.commits")

FETCH_TIMEOUT = 10.0
ENCODE_SHARE = 0.02
"""At most this share of the time goes to encoding metadata: commit rounds are spaced out when encoding gets costly
(tens of thousands of unsettled offsets per partition). Committers sharing an EncodingBudget (a gateway's pipelines)
hold it together: a share per committer would let encoding take it once per destination."""


@dataclass(slots=True)
class EncodingBudget:
    """ENCODE_SHARE held across the committers that share it: each spaces its rounds by what all of them spent
    encoding on their last round, keyed by owner (a pipeline keeps its key across consumer restarts)."""

    spent: dict[str, float] = field(default_factory=dict)

    def delay(self, period: float, owner: str, own: float) -> float:
        """`period`, stretched so that every owner encoding as last time, each at this spacing, stays in the share."""
        others = sum(seconds for key, seconds in self.spent.items() if key != owner)
        return max(period, (others + own) / ENCODE_SHARE)


@dataclass(slots=True)
class Committer:
    """Commits one consumer's trackers; remembers whether the broker takes metadata."""

    consumer: AIOKafkaConsumer
    metadata_max_bytes: int = DEFAULT_MAX_BYTES
    last_failure: KafkaError | None = field(default=None)
    encode_seconds: float = 0.0  # what the last round spent choosing positions and encoding metadata
    budget: EncodingBudget = field(default_factory=EncodingBudget)  # shared by a gateway's pipelines
    owner: str = ""

    def delay(self, period: float) -> float:
        """Seconds until the next commit round: `period`, stretched so encoding stays within its budget's share."""
        return self.budget.delay(period, self.owner, self.encode_seconds)

    async def commit(
        self,
        trackers: Mapping[TopicPartition, PartitionOffsets],
        only: Iterable[TopicPartition] | None = None,
        limit: float = KAFKA_CALL_TIMEOUT,
    ) -> dict[TopicPartition, Commit] | None:
        """Commit what moved, waiting at most `limit` seconds for the broker; the commits made ({} when nothing
        moved), or None when the commit failed or went unanswered (`last_failure` says why)."""
        started = time.perf_counter()
        commits = positions_to_commit(trackers, only, self.metadata_max_bytes)
        self.encode_seconds = self.budget.spent[self.owner] = time.perf_counter() - started
        if not commits:
            return commits
        try:
            await within(
                limit, self.consumer.commit({tp: (commit.position, commit.metadata) for tp, commit in commits.items()})
            )
        except OffsetMetadataTooLargeError:
            # This broker's offset.metadata.max.bytes is below ours: commit plain watermarks from now on.
            log.warning("the broker refuses commit metadata as too large; committing plain offsets from now on")
            self.metadata_max_bytes = 0
            commits = {tp: Commit(commit.position, "", commit.mark) for tp, commit in commits.items()}
            try:
                await within(limit, self.consumer.commit({tp: commit.position for tp, commit in commits.items()}))
            except KafkaError as error:
                self.last_failure = error
                return None
        except KafkaError as error:
            self.last_failure = error
            return None
        note_committed(trackers, commits)
        return commits


async def settled_above_committed(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], limit: float = FETCH_TIMEOUT
) -> tuple[dict[TopicPartition, SettledAbove], dict[TopicPartition, str]]:
    """Per partition, the offsets its committed metadata names as settled; and why the others' metadata was ignored.

    Partitions without a commit, or committed without metadata, appear in neither. aiokafka's `committed()` returns
    only the offset, so this asks its group coordinator for the OffsetAndMetadata; if that is ever unavailable, or the
    fetch fails, nothing is skipped (the records are sent again, never lost).
    """
    wanted = list(partitions)
    fetch = getattr(getattr(consumer, "_coordinator", None), "fetch_committed_offsets", None)
    if not wanted or fetch is None:
        return {}, {}
    try:
        # aiokafka retries retriable errors without limit: bounded here, so an assignment never waits on it for long.
        committed = await bounded(limit, fetch(wanted))
    except (KafkaError, TimeoutError) as error:
        log.warning("could not read commit metadata; settled records may be sent again", error=type(error).__name__)
        return {}, {}
    settled: dict[TopicPartition, SettledAbove] = {}
    ignored: dict[TopicPartition, str] = {}
    for tp, offset_and_metadata in committed.items():
        metadata = offset_and_metadata.metadata or ""
        if not metadata:
            continue
        try:
            found = decode(metadata, offset_and_metadata.offset)
        except UnreadableMetadata as unreadable:
            ignored[tp] = unreadable.reason
            continue
        if found.ranges:
            settled[tp] = found
    return settled, ignored
