"""Fixtures: a feed store on SQLite and on PostgreSQL (a schema of its own, dropped afterwards), with a manual clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from connectors.intarget.store import FeedStore
from connectors.intarget.store_postgres import PostgresStore
from connectors.intarget.store_sqlite import SqliteStore
from connectors.intarget.tests.clock import ManualClock

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def drop_schema(schema: str) -> None:
    """Remove a test's PostgreSQL schema."""
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def unique_schema() -> str:
    """A schema name no other test run uses."""
    return f"intarget_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> ManualClock:
    """The manual store clock."""
    return ManualClock()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> AsyncIterator[FeedStore]:
    """An open feed store on each backend."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "feeds.db", clock)
        await sqlite.open()
        yield sqlite
        await sqlite.close()
        return
    schema = unique_schema()
    postgres = PostgresStore(f"{POSTGRES_URL}?schema={schema}", clock)
    await postgres.open()
    try:
        yield postgres
    finally:
        await postgres.close()
        await drop_schema(schema)
