"""The feed store's contract and its write path, shared by the SQLite and PostgreSQL backends.

Every write is one transaction that first takes the store clock (a single row, `feed_clock`, locked until commit),
stamps every row it changes with `max(last stamp, now)` in whole seconds, and commits. So stamps never decrease,
and writers are serialized. A reader answering `[from, to)` checks that the clock has passed `to`, then takes the
same lock once (or sees a committed stamp at or past `to`, which proves the same): every write that could have
stamped below `to` has committed by then, and every later write stamps at or above `to`. That is the watermark:
a window once answered never gains rows (README, "Consistent windows").
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import orjson

from connectors.intarget.feeds import FEEDS
from connectors.intarget.store_writes import Transaction, apply_changes
from gateway.connector import VendorRecord

Clock = Callable[[], float]
"""Epoch seconds; injectable so tests can run many closed windows without waiting for them."""


class StoreUnavailable(Exception):
    """The store cannot be written or read right now (locked, disconnected): retry later."""


def parse(records: Sequence[VendorRecord]) -> list[tuple[str, dict[str, Any]]]:
    """(route, row) per record, in order."""
    return [(record.route, orjson.loads(record.body)) for record in records]


class FeedStore(abc.ABC):
    """One destination's feed store: upserts from the pipeline, windowed row streams for the feed server."""

    def __init__(self, clock: Clock | None) -> None:
        self.clock = clock

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the tables (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections (idempotent)."""

    @abc.abstractmethod
    async def _transaction(self, work: Callable[[Transaction, int], Any], stamped: bool) -> Any:
        """Run `work(tx, stamp)` in one transaction holding the clock lock; commit or roll back."""

    @abc.abstractmethod
    async def now(self) -> float:
        """The store clock (epoch seconds): the injected clock, else the database's (PostgreSQL) or this host's."""

    @abc.abstractmethod
    async def await_watermark(self, wait: float) -> bool:
        """Wait until no write is in progress (the clock lock is free once); False after `wait` seconds."""

    async def window_closed(self, end: int, wait: float) -> bool:
        """True when no write can still stamp below `end`; False after `wait` seconds of writes in progress.

        When the committed clock is already at or past `end`, no lock is needed: writers are serialized and stamps
        never decrease, so the write that committed that stamp came after every write that stamped below `end`. Only
        a window reaching up to the newest stamp takes the clock lock once. Feed requests for closed windows thus
        never queue behind a writer catching up a backlog.
        """
        committed = await self._read("SELECT last FROM feed_clock", [])
        if committed and int(committed[0][0]) >= end:
            return True
        return await self.await_watermark(wait)

    @abc.abstractmethod
    def rows(
        self, feed: str, start: int, end: int, brand: str | None, chunk: int
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """The feed's rows with `start <= window < end`, in chunks, from one consistent snapshot."""

    async def write(self, records: Sequence[VendorRecord]) -> None:
        """Apply one batch in one transaction: when this returns, the batch is durably committed."""
        changes = parse(records)

        async def work(tx: Transaction, stamp: int) -> None:
            await apply_changes(tx, stamp, changes)

        await self._transaction(work, True)

    async def custom_fields(self) -> list[tuple[str, str]]:
        """Known custom player fields (name, kind), sorted: the players feed's extra columns."""
        return await self._read("SELECT name, kind FROM player_custom_fields ORDER BY name", [])

    async def purge(self, retention: dict[str, float]) -> dict[str, int]:
        """Delete rows whose last change is older than their feed's retention (days); count per feed."""
        now = await self.now()

        async def work(tx: Transaction, _: int) -> dict[str, int]:
            deleted: dict[str, int] = {}
            for name, days in retention.items():
                feed = FEEDS[name]
                before = int(now - days * 86400)
                found = await tx.fetch(f"SELECT count(*) FROM {name} WHERE {feed.window} < ?", [before])  # noqa: S608
                if name == "casino_sessions":
                    await tx.executemany(
                        "DELETE FROM casino_actions WHERE session_id IN "
                        "(SELECT session_id FROM casino_sessions WHERE modified_at < ?)",
                        [[before]],
                    )
                await tx.executemany(f"DELETE FROM {name} WHERE {feed.window} < ?", [[before]])  # noqa: S608
                deleted[name] = int(found[0][0])
            return deleted

        result: dict[str, int] = await self._transaction(work, False)
        return result

    @abc.abstractmethod
    async def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """A small query outside any write transaction."""


def next_stamp(last: int, now: float) -> int:
    """The stamp of a write: whole seconds, never below the previous one."""
    return max(int(last), math.floor(now))


def system_clock() -> float:
    """This host's clock."""
    return time.time()
