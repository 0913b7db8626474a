"""Unit tests for commits with settled-offset metadata, against a fake consumer (the broker's answers are the edge)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, OffsetMetadataTooLargeError
from aiokafka.structs import OffsetAndMetadata

from gateway.commits import Committer, EncodingBudget, settled_above_committed
from gateway.offset_metadata import encode
from gateway.offsets import PartitionOffsets

TP = TopicPartition("events", 0)


class _Coordinator:
    def __init__(self, answers: dict[TopicPartition, OffsetAndMetadata] | Exception) -> None:
        self.answers = answers

    async def fetch_committed_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
        if isinstance(self.answers, Exception):
            raise self.answers
        return {tp: self.answers[tp] for tp in partitions if tp in self.answers}


class _Consumer:
    """Accepts commits, refusing metadata longer than `max_metadata` as Kafka's offset.metadata.max.bytes does."""

    def __init__(self, max_metadata: int = 4096, committed: Any = None) -> None:
        self.max_metadata = max_metadata
        self.commits: list[dict[TopicPartition, Any]] = []
        self._coordinator = _Coordinator(committed or {})

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        for value in offsets.values():
            if isinstance(value, tuple) and len(value[1]) > self.max_metadata:
                raise OffsetMetadataTooLargeError()
        self.commits.append(offsets)


def _held_watermark() -> PartitionOffsets:
    offsets = PartitionOffsets()
    for offset in range(10):
        offsets.track(offset, 1)
    for offset in range(1, 10, 2):
        offsets.settle(offset)
    return offsets


async def test_commit_carries_the_metadata_and_skips_rounds_without_news() -> None:
    """A commit names the settled offsets above the watermark; the next round, with nothing new, commits nothing."""
    consumer = _Consumer()
    committer = Committer(consumer)
    trackers = {TP: _held_watermark()}
    assert await committer.commit(trackers)
    position, metadata = consumer.commits[0][TP]
    assert position == 0
    assert metadata == encode(0, [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)])
    assert await committer.commit(trackers) == {}
    assert len(consumer.commits) == 1


async def test_a_broker_refusing_the_metadata_gets_plain_offsets_from_then_on() -> None:
    """OFFSET_METADATA_TOO_LARGE falls back to a plain watermark commit at once, and for every later commit."""
    consumer = _Consumer(max_metadata=5)
    committer = Committer(consumer, 4000)
    trackers = {TP: _held_watermark()}
    assert await committer.commit(trackers)
    assert consumer.commits == [{TP: 0}]
    trackers[TP].settle(0)
    assert await committer.commit(trackers)
    assert consumer.commits[-1] == {TP: (2, "")}
    assert committer.metadata_max_bytes == 0


async def test_rounds_are_spaced_out_when_encoding_gets_costly() -> None:
    """The next round waits the configured period, or longer when encoding took a noticeable share of it."""
    committer = Committer(_Consumer())
    assert committer.delay(0.2) == 0.2
    committer.encode_seconds = 0.01
    assert committer.delay(0.2) == 0.5


async def test_committers_sharing_a_budget_hold_the_share_together() -> None:
    """Three pipelines of one gateway, each spending 4 ms a round on encoding: spaced 0.2 s apart they would spend 6%
    of the process on it, so each waits 0.6 s (12 ms in 0.6 s is 2%). A committer with a budget of its own (replay)
    is not slowed by them."""
    budget = EncodingBudget()
    trackers = {TP: _held_watermark()}
    committers = [Committer(_Consumer(), 4000, budget=budget, owner=name) for name in ("a", "b", "c")]
    for committer in committers:
        await committer.commit(trackers)
        budget.spent[committer.owner] = committer.encode_seconds = 0.004  # as if encoding took 4 ms
    assert [round(committer.delay(0.2), 6) for committer in committers] == [0.6, 0.6, 0.6]
    alone = Committer(_Consumer(), 4000)
    alone.encode_seconds = 0.004
    assert round(alone.delay(0.2), 6) == 0.2
    replaced = Committer(_Consumer(), 4000, budget=budget, owner="a")  # pipeline a's next consumer: one share still
    assert round(replaced.delay(0.2), 6) == round(0.008 / 0.02, 6)


async def test_a_failed_commit_is_retried_next_round() -> None:
    """A commit the broker did not take leaves the trackers unmarked, so the next round commits again."""

    class _Failing(_Consumer):
        async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
            raise KafkaConnectionError()

    committer = Committer(_Failing())
    trackers = {TP: _held_watermark()}
    assert await committer.commit(trackers) is None
    assert type(committer.last_failure).__name__ == "KafkaConnectionError"
    committer.consumer = _Consumer()
    assert await committer.commit(trackers)


async def test_reading_metadata_sorts_ours_from_the_rest() -> None:
    """On assignment, our metadata becomes settled ranges; empty metadata is silent; others are ignored by reason."""
    tps = [TopicPartition("events", n) for n in range(4)]
    committed = {
        tps[0]: OffsetAndMetadata(5, encode(5, [(6, 9)])),
        tps[1]: OffsetAndMetadata(5, ""),
        tps[2]: OffsetAndMetadata(5, "set by a tool"),
        tps[3]: OffsetAndMetadata(5, encode(4, [(6, 9)])),
    }
    settled, ignored = await settled_above_committed(_Consumer(committed=committed), tps)
    assert {tp: found.ranges for tp, found in settled.items()} == {tps[0]: ((6, 9),)}
    assert ignored == {tps[2]: "foreign", tps[3]: "stale"}


async def test_reading_metadata_that_cannot_be_fetched_skips_nothing() -> None:
    """A failed or endless fetch of the committed metadata skips nothing: the records are sent again, never lost."""
    consumer = _Consumer(committed=KafkaConnectionError())
    assert await settled_above_committed(consumer, [TP]) == ({}, {})

    class _Hanging(_Coordinator):
        async def fetch_committed_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
            await asyncio.Event().wait()  # aiokafka retries without limit while the coordinator is unreachable
            return {}

    consumer._coordinator = _Hanging({})
    assert await settled_above_committed(consumer, [TP], limit=0.05) == ({}, {})
