"""The PostgreSQL feed store, for several gateway replicas sharing one store (asyncpg: async, maintained, fast).

Replicas write concurrently, so the store clock must be one clock for all of them: stamps come from the database
server's `clock_timestamp()` read after the `feed_clock` row is locked (`SELECT ... FOR UPDATE`), and that lock is
held until commit. Writers therefore commit in stamp order, and a reader that has seen the database clock pass `to`
and then taken the same row lock (`FOR SHARE`) knows no transaction can still commit a stamp below `to`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from connectors.intarget.feeds import column_types, ddl
from connectors.intarget.store import Clock, FeedStore, StoreUnavailable, next_stamp
from connectors.intarget.store_sqlite import select_sql
from connectors.intarget.store_writes import Transaction

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # "cannot switch to state N; another operation is in progress": a connection whose session was terminated in the
    # middle of an operation (seen when the server drops sessions mid-stream); the pool replaces it
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.TransactionRollbackError,  # serialization failures and deadlocks: retry the batch
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,  # e.g. the server shutting down
)
DB_CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_INSERT = re.compile(r"^INSERT INTO (\w+) \(([^)]*)\) VALUES \(([?, ]+)\)")
UNNEST_FROM = 8  # below this many rows, a pipelined executemany is as quick


@cache
def unnested(sql: str) -> str:
    """`INSERT INTO t (a, b) VALUES (?, ?) ...` as `INSERT INTO t (a, b) SELECT * FROM unnest(?::text[], ?::bigint[])
    ...`, typed from the table's columns (the rest of the statement, e.g. ON CONFLICT, is kept)."""
    match = _INSERT.match(sql)
    if match is None:
        raise ValueError(f"not a plain multi-row INSERT: {sql[:80]}")
    table, names = match.group(1), [name.strip() for name in match.group(2).split(",")]
    types = column_types(table)
    arrays = ", ".join(f"?::{types[name].lower()}[]" for name in names)
    # Table and column names come from the store's own statements, never from input.
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({arrays}){sql[match.end() :]}"  # noqa: S608


@cache
def numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...` (the store's SQL has no `?` inside literals)."""
    count = 0

    def next_number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", next_number, sql)


def split_url(url: str) -> tuple[str, str | None]:
    """The DSN for asyncpg and the `schema` query parameter (which asyncpg would take for a server setting)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((value for key, value in query if key == "schema"), None)
    if schema is not None and not _SCHEMA.match(schema):
        raise ValueError("schema must be a plain identifier")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class _PostgresTransaction:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(record) for record in await self._connection.fetch(numbered(sql), *args)]

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._connection.executemany(numbered(sql), rows)

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < UNNEST_FROM:
            await self.executemany(sql, rows)
            return
        # One statement for the whole batch: a row per array element, instead of one execution per row.
        await self._connection.execute(numbered(unnested(sql)), *(list(column) for column in zip(*rows, strict=True)))

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?::text[])", [list(values)]


class PostgresStore(FeedStore):
    """Feed store in PostgreSQL tables (in `?schema=` when given)."""

    def __init__(self, url: str, clock: Clock | None = None, pool_size: int = 8, password: str | None = None) -> None:
        super().__init__(clock)
        self._dsn, self.schema = split_url(url)
        self._password = password
        self._pool_size = pool_size
        self._pool: Any = None  # writes (batches, purge)
        self._read_pool: Any = None  # feed requests: a long stream never holds up a write, nor the reverse

    def _pool_or_fail(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the store is closed")
        return self._pool

    def _read_pool_or_fail(self) -> Any:
        if self._read_pool is None:
            raise StoreUnavailable("the store is closed")
        return self._read_pool

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            # Named per schema, so an operator (or a test) can find this store's sessions in pg_stat_activity.
            settings = {
                "application_name": f"event-gateway:{self.schema or 'public'}"[:63],
                # asyncpg prepares every statement; a generic plan made while a table was nearly empty would keep
                # scanning it whole as it grows (seconds per batch at 100k sessions). Custom plans cost ~0.1 ms.
                "plan_cache_mode": "force_custom_plan",
            }
            if self.schema is not None:
                connection = await asyncpg.connect(self._dsn, password=self._password)
                try:
                    await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                finally:
                    await connection.close()
                settings["search_path"] = self.schema
            self._pool = await asyncpg.create_pool(
                self._dsn, password=self._password, min_size=1, max_size=4, server_settings=settings
            )
            self._read_pool = await asyncpg.create_pool(
                self._dsn, password=self._password, min_size=1, max_size=self._pool_size, server_settings=settings
            )
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(727274)")  # replicas create tables one at a time
                for statement in ddl():
                    await connection.execute(statement)
        except UNAVAILABLE as error:
            await self.close()
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error

    async def close(self) -> None:
        for name in ("_pool", "_read_pool"):
            pool = getattr(self, name)
            setattr(self, name, None)
            if pool is not None:
                await pool.close()

    async def now(self) -> float:
        if self.clock is not None:
            return self.clock()
        try:
            async with self._read_pool_or_fail().acquire() as connection:
                return float(await connection.fetchval(DB_CLOCK))
        except UNAVAILABLE as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error

    async def _transaction(self, work: Callable[[Transaction, int], Any], stamped: bool) -> Any:
        try:
            async with self._pool_or_fail().acquire() as connection, connection.transaction():
                stamp = 0
                if stamped:
                    last = await connection.fetchval("SELECT last FROM feed_clock WHERE id = 1 FOR UPDATE")
                    now = self.clock() if self.clock is not None else float(await connection.fetchval(DB_CLOCK))
                    stamp = next_stamp(last, now)
                    await connection.execute("UPDATE feed_clock SET last = $1 WHERE id = 1", stamp)
                return await work(_PostgresTransaction(connection), stamp)
        except UNAVAILABLE as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error

    async def await_watermark(self, wait: float) -> bool:
        try:
            async with self._read_pool_or_fail().acquire() as connection, connection.transaction():
                await connection.execute(f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}")
                await connection.fetchval("SELECT last FROM feed_clock WHERE id = 1 FOR SHARE")
            return True
        except asyncpg.exceptions.LockNotAvailableError:
            return False
        except UNAVAILABLE as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error

    async def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._read_pool_or_fail().acquire() as connection:
                return [tuple(record) for record in await connection.fetch(numbered(sql), *args)]
        except UNAVAILABLE as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error

    async def rows(
        self, feed: str, start: int, end: int, brand: str | None, chunk: int
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        sql, args = select_sql(feed, start, end, brand)
        # A server-side cursor in one read-only snapshot: memory holds one chunk, whatever the window's size.
        async with (
            self._read_pool_or_fail().acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            cursor = await connection.cursor(numbered(sql), *args)
            while True:
                batch = await cursor.fetch(chunk)
                if not batch:
                    return
                yield [tuple(record) for record in batch]
