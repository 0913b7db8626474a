"""Helpers for the InTarget integration tests: store backends, the destination block, feed reads."""

from __future__ import annotations

import base64
import csv
import io
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from tests.integration.harness import InProcessGateway, wait_for

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "intarget-feed-token-123"
DESTINATION = "intarget"


class StoreBackend:
    """A store URL for one test: a SQLite file in tmp_path, or a PostgreSQL schema of its own (dropped after)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.schema = f"intarget_it_{uuid.uuid4().hex[:12]}"
        self.path = tmp_path / "feeds.db"

    @property
    def url(self) -> str:
        """The `store:` URL."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"  # tmp_path is absolute: sqlite:////tmp/...
        return f"{POSTGRES_URL}?schema={self.schema}"

    async def drop(self) -> None:
        """Remove the PostgreSQL schema (nothing to do for SQLite: tmp_path goes)."""
        if self.kind != "postgres":
            return
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await connection.close()


async def store_backend(kind: str, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """Yield a backend and clean it up."""
    backend = StoreBackend(kind, tmp_path)
    try:
        yield backend
    finally:
        await backend.drop()


def intarget_destination(store: str, port: int, **extra: Any) -> dict[str, Any]:
    """An InTarget destination with a token-protected feed on `port` and short batches."""
    destination: dict[str, Any] = {
        "name": DESTINATION,
        "connector": "intarget",
        "store": store,
        "feed": {"listen": f"127.0.0.1:{port}", "token": TOKEN, "watermark_wait": 5.0, "chunk_rows": 500},
        "batch": {"max_events": 500, "linger_ms": 20},
        "retry": {"initial": 0.05, "max": 0.5},
    }
    destination.update(extra)
    return destination


async def fetch(
    port: int,
    feed: str,
    start: str,
    end: str,
    fmt: str = "json",
    session: aiohttp.ClientSession | None = None,
    **query: str,
) -> bytes:
    """GET one feed window with the token (on `session`, kept alive, when given: a poller's thousand reads); asserts
    200."""
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await fetch(port, feed, start, end, fmt, own, **query)
    params = {"from": start, "to": end, "format": fmt, **query}
    url = f"http://127.0.0.1:{port}/intarget/{feed}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(url, params=params, headers=headers) as response:
        body = await response.read()
        assert response.status == 200, (response.status, body[:300])
        return body


async def rows(
    port: int, feed: str, start: str, end: str, session: aiohttp.ClientSession | None = None
) -> list[dict[str, Any]]:
    """A window's rows from the JSON feed."""
    parsed = orjson.loads(await fetch(port, feed, start, end, "json", session))
    assert isinstance(parsed, list)
    return parsed


async def csv_rows(port: int, feed: str, start: str, end: str) -> tuple[list[str], list[dict[str, str]]]:
    """A window's header and rows from the CSV feed."""
    text = (await fetch(port, feed, start, end, "csv")).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    found = list(reader)
    return list(reader.fieldnames or []), found


async def settled(running: InProcessGateway, produced: int, timeout: float = 60) -> None:
    """Wait until the destination consumed `produced` messages and has none in flight."""

    def done() -> bool:
        consumed = running.value("gateway_events_consumed_total", destination=DESTINATION)
        return consumed >= produced and running.value("gateway_in_flight_events", destination=DESTINATION) == 0

    await wait_for(done, timeout, f"{produced} events stored")


def basic(user: str, password: str) -> str:
    """An HTTP Basic header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def fill_logins(backend: StoreBackend, count: int, stamp: int) -> None:
    """Create the store's tables and `count` login rows stamped `stamp`, in one bulk statement (test setup only)."""
    from connectors.intarget.store_postgres import PostgresStore  # noqa: PLC0415
    from connectors.intarget.store_sqlite import SqliteStore  # noqa: PLC0415

    columns = "id, player_id, ip, created_at, user_agent, is_success, modified_at, brand"
    values = f"'203.0.113.7', '2026-03-01 10:00:00', 'Mozilla/5.0 (X11; Linux x86_64)', 1, {int(stamp)}, 'default'"
    if backend.kind == "sqlite":
        store = SqliteStore(backend.path)
        await store.open()
        await store.close()
        connection = sqlite3.connect(backend.path)
        try:
            connection.execute(
                f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {int(count)}) "
                f"INSERT INTO logins ({columns}) SELECT 'login-' || x, 'p-' || (x % 5000), {values} FROM n"
            )
            connection.commit()
        finally:
            connection.close()
        return
    postgres = PostgresStore(backend.url)
    await postgres.open()
    await postgres.close()
    connection = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": backend.schema})
    try:
        await connection.execute(
            f"INSERT INTO logins ({columns}) SELECT 'login-' || x, 'p-' || (x % 5000), {values} "
            f"FROM generate_series(1, {int(count)}) AS x"
        )
    finally:
        await connection.close()
