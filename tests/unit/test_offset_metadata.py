"""Unit and property tests for the commit metadata that names offsets settled above the watermark."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.offset_metadata import DEFAULT_MAX_BYTES, UnreadableMetadata, decode, encode
from gateway.offsets import PartitionOffsets, positions_to_commit


def _ranges(base: int, settled: list[bool]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for index, done in enumerate(settled):
        offset = base + index
        if not done:
            continue
        if ranges and ranges[-1][1] == offset:
            ranges[-1] = (ranges[-1][0], offset + 1)
        else:
            ranges.append((offset, offset + 1))
    return ranges


def _offsets(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> set[int]:
    return {offset for start, end in ranges for offset in range(start, end)}


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**40),
    st.lists(st.booleans(), max_size=3000),
    st.sampled_from([0, 10, 40, 200, DEFAULT_MAX_BYTES]),
)
def test_decode_never_claims_an_unsettled_offset(base: int, settled: list[bool], budget: int) -> None:
    """Whatever the budget, decoding claims only settled offsets, stays within the budget, and is exact when it fits."""
    ranges = _ranges(base + 1, settled)
    text = encode(base, ranges, budget)
    assert len(text) <= budget
    if not text:
        return
    claimed = _offsets(decode(text, base).ranges)
    assert claimed <= _offsets(ranges)
    if budget == DEFAULT_MAX_BYTES:
        assert claimed == _offsets(ranges)  # 3000 offsets always fit in 4000 bytes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=400))
def test_large_sparse_sets_are_run_length_encoded_within_the_budget(gaps: list[int]) -> None:
    """Runs spread over millions of offsets fit when run-length encoded, and a truncated encoding stays true."""
    ranges, cursor = [], 1
    for gap in gaps:
        ranges.append((cursor + gap, cursor + gap + gap))
        cursor += 2 * gap
    text = encode(0, ranges, 300)
    claimed = _offsets(decode(text, 0).ranges) if text else set()
    assert claimed <= _offsets(ranges)
    assert len(text) <= 300


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=300), st.randoms())
def test_tracker_commits_never_claim_an_unsettled_offset(plan: list[tuple[int, bool]], rng: object) -> None:
    """At every step of any settle order, the commit's metadata names only fully settled offsets."""
    assert isinstance(rng, random.Random)
    offsets = PartitionOffsets()
    outstanding: list[int] = []
    for offset, (records, _) in enumerate(plan):
        offsets.track(offset, records)
        outstanding.extend([offset] * records)
    rng.shuffle(outstanding)
    remaining = {offset: records for offset, (records, _) in enumerate(plan)}
    for offset in outstanding:
        offsets.settle(offset)
        remaining[offset] -= 1
        commit = positions_to_commit({"p": offsets}).get("p")
        if commit is None or not commit.metadata:
            continue
        for claimed in _offsets(decode(commit.metadata, commit.position).ranges):
            assert remaining[claimed] == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_safely(text: str) -> None:
    """Arbitrary metadata (another tool's, an older version's) is refused with UnreadableMetadata, never a crash."""
    with contextlib.suppress(UnreadableMetadata):
        decode(text, 0)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1000), st.integers(0, 10_000), st.characters(categories=["L", "N"]))
def test_a_damaged_character_is_detected(position: int, seed: int, replacement: str) -> None:
    """Changing one character of valid metadata is refused (or, in base64 padding bits, changes nothing)."""
    rng = random.Random(seed)
    ranges = _ranges(101, [rng.random() < 0.5 for _ in range(500)])
    text = encode(100, ranges)
    index = 5 + position % (len(text) - 5)
    damaged = text[:index] + replacement + text[index + 1 :]
    try:
        result = decode(damaged, 100)
    except UnreadableMetadata:
        return
    assert result == decode(text, 100)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "foreign"),
        ("written by kafka-consumer-groups", "foreign"),
        ("gw0r:AAAA", "foreign"),
        ("gw1r:!!!!", "corrupt"),
        ("gw1r:" + "A" * 40_000, "foreign"),
    ],
    ids=["empty", "another-tool", "other-version", "not-base64", "oversized"],
)
def test_unreadable_metadata_is_named(text: str, reason: str) -> None:
    """Metadata that is not ours, or damaged, is refused with a reason for the metric."""
    with pytest.raises(UnreadableMetadata) as refused:
        decode(text, 0)
    assert refused.value.reason == reason


def test_metadata_for_another_offset_is_stale() -> None:
    """Metadata read with a committed offset other than its own (the offset was moved by a tool) is refused."""
    text = encode(100, [(101, 105)])
    assert decode(text, 100).ranges == ((101, 105),)
    with pytest.raises(UnreadableMetadata, match="stale"):
        decode(text, 90)


def test_dense_sets_use_the_bitmap_and_sparse_ones_the_runs() -> None:
    """The smaller encoding is chosen: alternating offsets as a bitmap, long runs as run lengths."""
    alternating = [(offset, offset + 1) for offset in range(1, 2000, 2)]
    assert encode(0, alternating).startswith("gw1b:")
    assert encode(0, [(1, 1_000_000)]).startswith("gw1r:")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=400), st.integers(0, 400), st.integers(0, 400))
def test_a_restart_skips_exactly_what_settled_and_keeps_naming_the_unread_rest(
    settled: list[bool], read_again: int, settle_later: int
) -> None:
    """Commit, restart from the metadata: the new tracker skips exactly the settled offsets, and its own commits,
    before it re-read them all, still name the settled ones it did not reach yet."""
    before = PartitionOffsets()
    for offset, _ in enumerate(settled):
        before.track(offset, 1)
    for offset, done in enumerate(settled):
        if done:
            before.settle(offset)
    commit = positions_to_commit({"p": before})["p"]
    truly_settled = {offset for offset, done in enumerate(settled) if done and offset >= commit.position}
    found = decode(commit.metadata, commit.position) if commit.metadata else None
    after = PartitionOffsets(found)
    skipped = set()
    for offset in range(commit.position, min(len(settled), commit.position + read_again)):
        if after.settled_before(offset):
            skipped.add(offset)
            after.track(offset, 0)
        else:
            after.track(offset, 1)
    assert skipped == {o for o in truly_settled if o < commit.position + read_again}
    for offset in range(commit.position, commit.position + settle_later):
        after.settle(offset)
    again = positions_to_commit({"p": after}).get("p")
    if again is None or not again.metadata:
        return
    named = _offsets(decode(again.metadata, again.position).ranges)
    unread_settled = {o for o in truly_settled if o >= commit.position + read_again}
    assert unread_settled <= named
    assert all(o in truly_settled or o < commit.position + read_again for o in named)
