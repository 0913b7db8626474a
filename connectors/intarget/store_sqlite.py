"""The SQLite feed store (the default): one file in WAL mode, one writer connection on its own thread.

sqlite3 is synchronous, so every call runs on a thread: the writer's on a single dedicated thread (a connection
is used by one thread at a time, and the write lock is held across the calls of one transaction), each feed
stream on a connection of its own. WAL lets those readers stream a snapshot while the writer commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from connectors.intarget.feeds import FALLBACKS, FEEDS, HELD, Column, ddl
from connectors.intarget.store import Clock, FeedStore, StoreUnavailable, next_stamp, system_clock
from connectors.intarget.store_writes import Transaction

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000


def _connect(path: Path, busy_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    return connection


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class _SqliteTransaction:
    """Runs statements on the writer thread."""

    def __init__(self, store: SqliteStore, connection: sqlite3.Connection) -> None:
        self._store = store
        self._connection = connection

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self._store.on_writer(lambda: self._connection.execute(sql, args).fetchall())

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._store.on_writer(lambda: self._connection.executemany(sql, rows))

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.executemany(sql, rows)

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)


class SqliteStore(FeedStore):
    """Feed store in one SQLite file."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one transaction at a time on the writer connection

    async def on_writer(self, call: Callable[[], T]) -> T:
        """Run `call` on the writer thread."""
        if self._executor is None:
            raise StoreUnavailable("the store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(str(error)) from error

    async def open(self) -> None:
        if self._executor is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intarget-store")

        def setup() -> sqlite3.Connection:
            connection = _connect(self.path)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
            connection.execute("BEGIN IMMEDIATE")
            for statement in ddl():
                connection.execute(statement)
            connection.execute("COMMIT")
            return connection

        self._writer = await self.on_writer(setup)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        writer, self._writer = self._writer, None
        if executor is None:
            return
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(executor, writer.close)
        executor.shutdown(wait=True)

    async def now(self) -> float:
        return (self.clock or system_clock)()

    async def _transaction(self, work: Callable[[Transaction, int], Any], stamped: bool) -> Any:
        async with self._lock:
            return await self._locked_transaction(work, stamped)

    async def _locked_transaction(self, work: Callable[[Transaction, int], Any], stamped: bool) -> Any:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("the store is closed")
        await self.on_writer(lambda: writer.execute("BEGIN IMMEDIATE"))
        try:
            stamp = 0
            if stamped:
                # The clock is read after the write lock is held: see the store module's docstring.
                last = await self.on_writer(lambda: writer.execute("SELECT last FROM feed_clock").fetchone()[0])
                stamp = next_stamp(last, await self.now())
                await self.on_writer(lambda: writer.execute("UPDATE feed_clock SET last = ?", (stamp,)))
            result = await work(_SqliteTransaction(self, writer), stamp)
            await self.on_writer(lambda: writer.execute("COMMIT"))
            return result
        except BaseException:
            if self._executor is not None:
                await asyncio.shield(
                    self.on_writer(lambda: writer.execute("ROLLBACK") if writer.in_transaction else None)
                )
            raise

    async def await_watermark(self, wait: float) -> bool:
        """Take this process's writer lock in turn (an asyncio.Lock is FIFO, so a writer catching up a backlog with
        back-to-back transactions cannot starve the feed), then SQLite's write lock once, for writes of another
        process on the same file (`gateway replay`). SQLite's own busy handler alone polls, and under back-to-back
        writes it kept missing the gaps (test_a_busy_writer_does_not_starve_feed_requests)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                await self._lock.acquire()
        except TimeoutError:
            return False
        try:
            return await asyncio.to_thread(self._take_sqlite_lock_once, max(0.001, wait - (time.monotonic() - started)))
        finally:
            self._lock.release()

    def _take_sqlite_lock_once(self, wait: float) -> bool:
        connection = _connect(self.path, int(wait * 1000))
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()

    async def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        def query() -> list[tuple[Any, ...]]:
            connection = _connect(self.path)
            try:
                return connection.execute(sql, args).fetchall()
            finally:
                connection.close()

        try:
            return await asyncio.to_thread(query)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(str(error)) from error

    async def rows(
        self, feed: str, start: int, end: int, brand: str | None, chunk: int
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        sql, args = select_sql(feed, start, end, brand)
        connection = await asyncio.to_thread(_connect, self.path)
        try:
            # One statement, stepped chunk by chunk: SQLite keeps its read snapshot until the statement ends.
            cursor = await asyncio.to_thread(connection.execute, sql, args)
            while True:
                batch = await asyncio.to_thread(cursor.fetchmany, chunk)
                if not batch:
                    return
                yield batch
        finally:
            await asyncio.to_thread(connection.close)


def _served(feed_name: str, column: Column) -> str:
    """The SQL a served column is read as: a derived expression, a stated fallback, or the stored column."""
    return column.derived or FALLBACKS.get((feed_name, column.name), column.name)


def select_sql(feed_name: str, start: int, end: int, brand: str | None) -> tuple[str, list[Any]]:
    """The window query of a feed (`?` placeholders), ordered by the window column and the natural key. Rows still
    missing a HELD required field are left out until an event gives it (which stamps them anew)."""
    feed = FEEDS[feed_name]
    columns = [_served(feed_name, column) for column in feed.columns]
    columns += ["custom"] if feed_name == "players" else []
    sql = f"SELECT {', '.join(columns)} FROM {feed.name} WHERE {feed.window} >= ? AND {feed.window} < ?"  # noqa: S608
    sql += "".join(f" AND {name} IS NOT NULL" for name in HELD.get(feed_name, ()))
    args: list[Any] = [start, end]
    if brand is not None:
        sql += " AND brand = ?"
        args.append(brand)
    return sql + f" ORDER BY {feed.window}, {feed.key}", args
