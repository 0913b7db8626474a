"""Which records this replica still owns: a client that makes several requests per send asks before each request."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from gateway.connector import VendorRecord
from gateway.outcomes import Outcome, SendResult

REVOKED = "revoked"
"""The reason of a RETRY result that only says: the rest of the batch is no longer this replica's to send."""

_owned: ContextVar[Callable[[VendorRecord], bool] | None] = ContextVar("gateway_record_ownership", default=None)


def still_owned(record: VendorRecord) -> bool:
    """False once the Kafka partition `record` was consumed from has been revoked from this replica: another replica
    now sends it, from the last commit. The engine checks before each send; a client whose one send makes several
    requests (Enable3: one per record; UserWise: several per player) checks before each request, so that after the
    revocation wait two replicas never send the same partition at once."""
    check = _owned.get()
    return True if check is None else check(record)


@contextlib.contextmanager
def ownership(check: Callable[[VendorRecord], bool]) -> Iterator[None]:
    """Answer `still_owned` with `check` for the client's send inside this block (and the tasks it starts)."""
    token = _owned.set(check)
    try:
        yield
    finally:
        _owned.reset(token)


def revoked(delivered: int, duplicates: int = 0) -> SendResult:
    """A client's result when it stopped before record `delivered` because that record is no longer owned: the
    records before it are delivered; the engine drops the revoked ones and sends the rest at once, without backoff."""
    done = frozenset(range(delivered)) if delivered else None
    return SendResult(Outcome.RETRY, 0, REVOKED, "partition revoked", delivered=done, duplicates=duplicates)
