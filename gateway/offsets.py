"""Per-partition offset watermarks: commit only up to the lowest offset not yet settled."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import TypeVar

Partition = TypeVar("Partition")


class PartitionOffsets:
    """Tracks one partition's consumed messages until each is settled (delivered, dead-lettered or filtered).

    Messages arrive in offset order. Each is tracked with the number of vendor records it became; it is settled
    when all of them are. `committable()` is the Kafka commit position: the lowest unsettled offset, or one past
    the last consumed offset when everything is settled. After `close()` (partition revoked) settles are ignored,
    so work finishing late can never move a commit for a partition this consumer no longer owns.
    """

    __slots__ = ("_order", "_pending", "closed", "committed", "next_offset")

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}
        self._order: deque[int] = deque()
        self.next_offset: int | None = None
        self.committed: int | None = None
        self.closed = False

    def __len__(self) -> int:
        """Number of consumed messages not yet settled."""
        return len(self._pending)

    def track(self, offset: int, records: int) -> None:
        """Record that `offset` was consumed and became `records` vendor records (0 = settled at once)."""
        if self.next_offset is not None and offset < self.next_offset:
            raise ValueError(f"offset {offset} consumed out of order (expected >= {self.next_offset})")
        self.next_offset = offset + 1
        if records > 0:
            self._pending[offset] = records
            self._order.append(offset)

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

    def close(self) -> int:
        """Stop tracking (partition revoked); returns how many unsettled messages were abandoned."""
        abandoned = len(self._pending)
        self.closed = True
        self._pending.clear()
        self._order.clear()
        return abandoned


def positions_to_commit(
    trackers: Mapping[Partition, PartitionOffsets], only: Iterable[Partition] | None = None
) -> dict[Partition, int]:
    """The commit position of each open tracker (of `only`, else all) whose position moved past its last commit."""
    positions: dict[Partition, int] = {}
    for partition in trackers if only is None else only:
        tracker = trackers.get(partition)
        if tracker is None or tracker.closed:
            continue
        position = tracker.committable()
        if position is not None and position != tracker.committed:
            positions[partition] = position
    return positions
