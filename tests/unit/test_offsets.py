"""Unit tests for the per-partition offset watermark."""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.offset_metadata import SettledAbove, decode
from gateway.offsets import PartitionOffsets, note_committed, positions_to_commit


def test_nothing_consumed_has_no_commit() -> None:
    """A partition with no consumed message has nothing to commit."""
    assert PartitionOffsets().committable() is None


def test_commit_stops_at_lowest_unsettled() -> None:
    """The commit position is the lowest unsettled offset, even when later offsets are settled."""
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.track(offset, 1)
    offsets.settle(11)
    offsets.settle(13)
    assert offsets.committable() == 10
    offsets.settle(10)
    assert offsets.committable() == 12
    offsets.settle(12)
    assert offsets.committable() == 14


def test_filtered_messages_settle_at_once() -> None:
    """A message tracked with zero records is settled at once and moves the watermark past itself."""
    offsets = PartitionOffsets()
    offsets.track(0, 0)
    offsets.track(1, 0)
    assert offsets.committable() == 2
    assert len(offsets) == 0


def test_message_with_several_records_settles_after_all() -> None:
    """A message that became several vendor records is settled only when every record is."""
    offsets = PartitionOffsets()
    offsets.track(5, 3)
    assert not offsets.settle(5)
    assert not offsets.settle(5)
    assert offsets.committable() == 5
    assert offsets.settle(5)
    assert offsets.committable() == 6


def test_close_ignores_late_settles() -> None:
    """After revocation, late settles neither move the watermark nor count."""
    offsets = PartitionOffsets()
    offsets.track(0, 1)
    offsets.track(1, 1)
    assert offsets.close() == 2
    assert not offsets.settle(0)
    assert len(offsets) == 0
    assert offsets.committable() is not None


def test_out_of_order_tracking_is_refused() -> None:
    """Offsets must be tracked in increasing order; anything else is a bug surfaced loudly."""
    offsets = PartitionOffsets()
    offsets.track(5, 1)
    with pytest.raises(ValueError, match="out of order"):
        offsets.track(4, 1)


def test_len_counts_unsettled_messages() -> None:
    """len() counts messages with unsettled records (what backpressure bounds), not filtered ones."""
    offsets = PartitionOffsets()
    offsets.track(0, 2)
    offsets.track(1, 0)
    assert len(offsets) == 1
    offsets.settle(0, 2)
    assert len(offsets) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=60), st.randoms())
def test_watermark_never_passes_an_unsettled_offset(plan: list[tuple[int, bool]], rng: object) -> None:
    """Whatever the settle order, the commit position never passes an offset that is not settled."""
    assert isinstance(rng, random.Random)
    offsets = PartitionOffsets()
    outstanding: list[int] = []
    for offset, (records, _) in enumerate(plan):
        offsets.track(offset, records)
        outstanding.extend([offset] * records)
    rng.shuffle(outstanding)
    settled_counts: dict[int, int] = {}
    for offset in outstanding:
        offsets.settle(offset)
        settled_counts[offset] = settled_counts.get(offset, 0) + 1
        position = offsets.committable()
        assert position is not None
        for earlier in range(position):
            assert settled_counts.get(earlier, 0) == plan[earlier][0]
    assert offsets.committable() == len(plan)


def test_positions_to_commit_skip_unmoved_closed_and_unknown_partitions() -> None:
    """Only open trackers with news since the last commit are committed; `only` narrows the partitions."""
    moved, unmoved, closed = PartitionOffsets(), PartitionOffsets(), PartitionOffsets()
    for tracker in (moved, unmoved, closed):
        tracker.track(0, 0)
    unmoved.committed, unmoved.committed_mark = 1, unmoved.mark
    closed.close()
    trackers = {"moved": moved, "unmoved": unmoved, "closed": closed}
    commits = positions_to_commit(trackers)
    assert {name: commit.position for name, commit in commits.items()} == {"moved": 1}
    assert positions_to_commit(trackers, ["unmoved", "gone"]) == {}
    note_committed(trackers, commits)
    assert positions_to_commit(trackers) == {}


def test_commit_names_the_offsets_settled_above_the_watermark() -> None:
    """A commit held by one unsettled offset carries metadata naming every settled offset above it."""
    offsets = PartitionOffsets()
    for offset in range(100, 110):
        offsets.track(offset, 1)
    for offset in (101, 102, 105, 109):
        offsets.settle(offset)
    commit = positions_to_commit({"p": offsets})["p"]
    assert commit.position == 100
    assert decode(commit.metadata, 100).ranges == ((101, 103), (105, 106), (109, 110))
    assert positions_to_commit({"p": offsets}, metadata_max_bytes=0)["p"].metadata == ""


def test_a_million_settled_offsets_above_one_unsettled_stay_small() -> None:
    """One unsettled offset below a million settled ones holds a few entries, not a million, and commits in bytes."""
    offsets = PartitionOffsets()
    offsets.track(0, 1)
    for offset in range(1, 1_000_001):
        offsets.track(offset, 1)
        offsets.settle(offset)
    assert len(offsets) == 1
    assert sys.getsizeof(offsets._order) < 10_000  # a million-entry deque is ~8 MB
    assert offsets.committable() == 0
    assert list(offsets.settled_above()) == [(1, 1_000_001)]
    commit = positions_to_commit({"p": offsets})["p"]
    assert len(commit.metadata) < 40
    assert decode(commit.metadata, 0).ranges == ((1, 1_000_001),)


def test_offsets_settled_before_are_skipped_and_still_named() -> None:
    """Offsets a previous owner settled are reported as such, and stay named in commits until read again."""
    offsets = PartitionOffsets(SettledAbove(10, ((11, 13), (20, 22))))
    assert [offsets.settled_before(o) for o in (10, 11, 12, 13)] == [False, True, True, False]
    offsets.track(10, 1)
    offsets.track(11, 0)
    offsets.track(12, 0)
    offsets.track(13, 1)
    assert list(offsets.settled_above()) == [(11, 13), (20, 22)]
    offsets.settle(10)
    assert offsets.committable() == 13
    assert list(offsets.settled_above()) == [(20, 22)]
