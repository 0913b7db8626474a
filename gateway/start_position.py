"""Where a destination reads from when its consumer group has no committed offset yet (`start_from`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

log = structlog.get_logger("gateway.start_position")

POLICIES = ("earliest", "latest")


def parse_start_from(value: str) -> str:
    """`earliest`, `latest`, or an RFC 3339 time with a zone (normalized); ValueError otherwise."""
    if value in POLICIES:
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be earliest, latest or an RFC 3339 time such as 2026-12-01T00:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError("a start_from time needs a zone, e.g. 2026-12-01T00:00:00Z")
    return when.isoformat()


def reset_policy(start_from: str | None, default: str) -> str:
    """The consumer's auto_offset_reset: the destination's own policy, else the kafka section's."""
    return start_from if start_from in POLICIES else default


def start_time(start_from: str | None) -> datetime | None:
    """The time a destination starts from, when `start_from` is one."""
    if start_from is None or start_from in POLICIES:
        return None
    return datetime.fromisoformat(start_from)


class StartFilter:
    """Skips the records older than `start_from` at the head of partitions a new group starts reading.

    The seek by time (offsets_for_times) is only as good as the broker's time index, and Tansu's answers offset 0 for
    any time in the past; so the records read from a fresh partition are also compared with the start time, up to the
    first one at or after it. The skipped ones settle as filtered, so the commit moves past them.
    """

    def __init__(self, when: datetime | None) -> None:
        self.when = when
        self._ms = int(when.timestamp() * 1000) if when is not None else 0
        self.pending: set[TopicPartition] = set()

    def begin(self, partitions: Sequence[TopicPartition]) -> None:
        """These partitions start afresh: skip their records older than the start time."""
        self.pending.update(partitions)

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """These partitions were revoked."""
        self.pending.difference_update(partitions)

    def older(self, tp: TopicPartition, messages: Sequence[Any]) -> int:
        """How many of `messages` (the next records of `tp`) come before the first one at or after the start time."""
        if tp not in self.pending:
            return 0
        for index, message in enumerate(messages):
            if message.timestamp >= self._ms:
                self.pending.discard(tp)
                return index
        return len(messages)


async def seek_new_partitions(
    consumer: AIOKafkaConsumer, assigned: Sequence[TopicPartition], when: datetime
) -> list[TopicPartition]:
    """Position each assigned partition that has no committed offset at its first record at or after `when`.

    A partition with a committed offset is never moved: `start_from` only decides where a new group begins, so a
    restart or a rebalance resumes where the group left off. A partition with no record that recent starts at its end.
    Returns the partitions that were positioned (those with no committed offset).
    """
    fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
    if not fresh:
        return fresh
    found: dict[TopicPartition, Any] = await consumer.offsets_for_times(
        {tp: int(when.timestamp() * 1000) for tp in fresh}
    )
    at_end = []
    for tp in fresh:
        hit = found.get(tp)
        if hit is None:
            at_end.append(tp)
        else:
            consumer.seek(tp, hit.offset)
    if at_end:
        await consumer.seek_to_end(*at_end)
    log.info(
        "new partitions positioned by start_from",
        start_from=when.isoformat(),
        partitions={f"{tp.topic}/{tp.partition}": (found[tp].offset if found.get(tp) else "end") for tp in fresh},
    )
    return fresh
