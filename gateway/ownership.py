"""Which records this replica still owns: a client that makes several requests per send asks before each request."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

from gateway.connector import VendorRecord
from gateway.outcomes import Outcome, SendResult

REVOKED = "revoked"
"""The reason of a RETRY result that only says: the rest of the batch is no longer this replica's to send."""

Check = Callable[[VendorRecord], bool]

_owned: ContextVar[list[Check] | None] = ContextVar("gateway_record_ownership", default=None)
"""A box holding the current send's check, emptied when the send ends. Anything created during the send copies the
context and may outlive it: a pooled connection's reader callback keeps its context for as long as the connection
lives. The box is all that stays behind, never the check's batch (measured: 100k+ settled records kept alive)."""


def still_owned(record: VendorRecord) -> bool:
    """False once the Kafka partition `record` was consumed from has been revoked from this replica: another replica
    now sends it, from the last commit. The engine checks before each send; a client whose one send makes several
    requests (Enable3: one per record; UserWise: several per player) checks before each request, so that after the
    revocation wait two replicas never send the same partition at once."""
    box = _owned.get()
    return True if not box else box[0](record)


class Ownership:
    """A `with` block answering `still_owned` with `check` for the client's send inside it (and the tasks it
    starts); after it, nothing refers to `check` any longer, even from contexts copied inside the block. A class
    rather than a generator-based context manager: it is entered once per request, and costs a fifth as much."""

    __slots__ = ("_box", "_token")

    def __init__(self, check: Check) -> None:
        self._box = [check]
        self._token: Token[list[Check] | None] | None = None

    def __enter__(self) -> None:
        self._token = _owned.set(self._box)

    def __exit__(self, *_: object) -> None:
        self._box.clear()
        if self._token is not None:
            _owned.reset(self._token)


def revoked(delivered: int, duplicates: int = 0) -> SendResult:
    """A client's result when it stopped before record `delivered` because that record is no longer owned: the
    records before it are delivered; the engine drops the revoked ones and sends the rest at once, without backoff."""
    done = frozenset(range(delivered)) if delivered else None
    return SendResult(Outcome.RETRY, 0, REVOKED, "partition revoked", delivered=done, duplicates=duplicates)
