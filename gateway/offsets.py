"""Per-partition offset watermarks: commit only up to the lowest offset not yet settled, and name what settled above."""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from gateway.load import Load
from gateway.offset_metadata import DEFAULT_MAX_BYTES, Range, SettledAbove, encode

Partition = TypeVar("Partition")


class PartitionOffsets:
    """Tracks one partition's consumed messages until each is settled (delivered, dead-lettered or filtered).

    Messages arrive in offset order. Each is tracked with the number of vendor records it became; it is settled
    when all of them are. `committable()` is the Kafka commit position: the lowest unsettled offset, or one past
    the last consumed offset when everything is settled. After `close()` (partition revoked) settles are ignored,
    so work finishing late can never move a commit for a partition this consumer no longer owns.

    Memory is proportional to the unsettled messages only: settled offsets are never stored, since every offset
    between the watermark and `next_offset` that is not unsettled is settled (or holds no record). `settled_before`
    are ranges a previous owner committed as settled (commit metadata): the consumer skips those records.

    A message tracked with a `load` adds its size to it, and releases it when it settles or the tracker closes: the
    pipeline's bound in bytes (and per tenant) reads those loads rather than walking the trackers.
    """

    __slots__ = (
        "_held",
        "_order",
        "_pending",
        "_skip",
        "closed",
        "committed",
        "committed_mark",
        "next_offset",
        "replay_end",
        "settles",
        "token",
    )

    def __init__(self, settled_before: SettledAbove | None = None) -> None:
        self._pending: dict[int, int] = {}
        self._held: dict[int, tuple[Load, int]] = {}  # unsettled offset -> the load it counts in, and its size
        # Unsettled offsets in increasing order, possibly with settled ones not yet dropped; compacted when it
        # grows past twice the unsettled count, so it never outgrows what is in flight.
        self._order: deque[int] = deque()
        self._skip: deque[Range] = deque(settled_before.ranges if settled_before is not None else ())
        # Where the previous owner had read up to (as far as its commit said): below it, what is read again was
        # unsettled then, so it precedes whatever that owner parked (gateway.parking).
        self.replay_end = self._skip[-1][1] if self._skip else 0
        self.next_offset: int | None = None
        self.committed: int | None = None
        self.committed_mark: tuple[int | None, int] | None = None
        self.settles = 0  # messages fully settled so far: with next_offset, tells whether there is news to commit
        self.closed = False
        self.token = secrets.token_hex(8)  # names this tracking of the partition, by this process, in parked records

    def __len__(self) -> int:
        """Number of consumed messages not yet settled."""
        return len(self._pending)

    @property
    def mark(self) -> tuple[int | None, int]:
        """Changes whenever the commit position or the set of settled offsets may have changed."""
        return self.next_offset, self.settles

    def settled_before(self, offset: int) -> bool:
        """True when a previous owner settled the message at `offset` (call in offset order, once per message)."""
        skip = self._skip
        while skip and skip[0][1] <= offset:
            skip.popleft()
        return bool(skip) and skip[0][0] <= offset

    def track(self, offset: int, records: int, load: Load | None = None, size: int = 0) -> None:
        """Record that `offset` was consumed and became `records` vendor records (0 = settled at once); while
        unsettled it counts in `load` as one message of `size` bytes."""
        if self.next_offset is not None and offset < self.next_offset:
            raise ValueError(f"offset {offset} consumed out of order (expected >= {self.next_offset})")
        self.next_offset = offset + 1
        if records > 0:
            self._pending[offset] = records
            if load is not None:
                load.add(size)
                self._held[offset] = (load, size)
            order = self._order
            order.append(offset)
            if len(order) > 2 * len(self._pending) + 64:
                self._order = deque(offset for offset in order if offset in self._pending)

    def unsettled(self, offset: int) -> bool:
        """True while the message at `offset` is tracked here and not settled (False once the tracker is closed)."""
        return not self.closed and offset in self._pending

    def settle(self, offset: int, records: int = 1) -> bool:
        """Settle `records` of the message at `offset`; True when the whole message is now settled."""
        if self.closed:
            return False
        remaining = self._pending.get(offset)
        if remaining is None:
            return False
        remaining -= records
        if remaining > 0:
            self._pending[offset] = remaining
            return False
        del self._pending[offset]
        held = self._held.pop(offset, None)
        if held is not None:
            held[0].release(held[1])
        self.settles += 1
        return True

    def committable(self) -> int | None:
        """The offset to commit (next message to read), or None when nothing was consumed yet."""
        order = self._order
        pending = self._pending
        while order and order[0] not in pending:
            order.popleft()
        if order:
            return order[0]
        return self.next_offset

    def settled_above(self) -> Iterator[Range]:
        """Ranges of settled offsets above the commit position, in order: those consumed and settled here, then
        those a previous owner settled that were not read again yet."""
        position = self.committable()
        if position is None:
            return
        cursor = position
        for offset in self._pending:  # ascending: offsets are tracked in order, and a dict keeps insertion order
            if offset > cursor:
                yield cursor, offset
            cursor = offset + 1
        end = self.next_offset if self.next_offset is not None else cursor
        if end > cursor:
            yield cursor, end
        for start, stop in self._skip:
            if stop > max(start, end):
                yield max(start, end), stop

    def close(self) -> int:
        """Stop tracking (partition revoked); returns how many unsettled messages were abandoned."""
        abandoned = len(self._pending)
        self.closed = True
        for load, size in self._held.values():
            load.release(size)
        self._held.clear()
        self._pending.clear()
        self._order.clear()
        self._skip.clear()
        return abandoned


@dataclass(frozen=True, slots=True)
class Commit:
    """One partition's commit: the position, the metadata naming what settled above it, and the tracker's mark."""

    position: int
    metadata: str
    mark: tuple[int | None, int]


def positions_to_commit(
    trackers: Mapping[Partition, PartitionOffsets],
    only: Iterable[Partition] | None = None,
    metadata_max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[Partition, Commit]:
    """The commit of each open tracker (of `only`, else all) with news since its last commit.

    `metadata_max_bytes` = 0 commits plain watermarks.
    """
    commits: dict[Partition, Commit] = {}
    for partition in trackers if only is None else only:
        tracker = trackers.get(partition)
        if tracker is None or tracker.closed or tracker.mark == tracker.committed_mark:
            continue
        position = tracker.committable()
        if position is None:
            continue
        metadata = encode(position, tracker.settled_above(), metadata_max_bytes) if metadata_max_bytes > 0 else ""
        if position == tracker.committed and not metadata:
            tracker.committed_mark = tracker.mark  # nothing new to say
            continue
        commits[partition] = Commit(position, metadata, tracker.mark)
    return commits


def note_committed(trackers: Mapping[Partition, PartitionOffsets], commits: Mapping[Partition, Commit]) -> None:
    """Record that `commits` were acknowledged by the broker."""
    for partition, commit in commits.items():
        tracker = trackers.get(partition)
        if tracker is not None:
            tracker.committed = commit.position
            tracker.committed_mark = commit.mark
