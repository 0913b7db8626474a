"""Benchmark: InTarget's feed store and feed server, on SQLite and PostgreSQL.

Prints, per backend: the store write rate (events/s and row changes/s through the connector's write path, batches
of the connector's default size, one transaction each), and the feed read rate (rows/s, CSV and JSON) of a
1,000,000-row window served by a feed server in a child process, with that process's baseline and peak RSS.
Run: .venv/bin/python bench/intarget_store.py [--events 200000] [--rows 1000000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import psutil

from connectors.intarget import connector
from connectors.intarget.config import DEFAULTS, FeedSettings
from connectors.intarget.formats import stamp_text
from connectors.intarget.store import FeedStore
from connectors.intarget.store_postgres import PostgresStore
from connectors.intarget.store_sqlite import SqliteStore
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from gateway.connector import VendorRecord
from gateway.events import decode

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "bench-token"
STAMP = 1_780_000_000
FEED_TYPES = {"player", "deposit", "withdrawal", "gameround", "login", "wallet", "bonus", "sports_bet", "game"}


def open_store(url: str) -> FeedStore:
    """The store of a URL."""
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    return PostgresStore(url)


def mapped(count: int) -> list[tuple[int, list[VendorRecord]]]:
    """Batches of (events, records) from realistic traffic, mapped before the clock starts."""
    options = connector.options_model()
    events = [e for e in Traffic(seed=11, players=20_000, prefix="bench").stream(count) if e["type"] in FEED_TYPES]
    batches = []
    for start in range(0, len(events), DEFAULTS.max_events):
        part = events[start : start + DEFAULTS.max_events]
        records = [r for e in part for r in connector.map(decode(orjson.dumps(e)), options)]
        batches.append((len(part), records))
    return batches


async def write_rate(url: str, batches: list[tuple[int, list[VendorRecord]]]) -> tuple[float, float]:
    """Events/s and records/s of store.write over the batches."""
    store = open_store(url)
    await store.open()
    try:
        started = time.perf_counter()
        for _, records in batches:
            await store.write(records)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    events = sum(count for count, _ in batches)
    changes = sum(len(r) for _, r in batches)
    return events / elapsed, changes / elapsed


async def fill_logins(url: str, rows: int) -> None:
    """`rows` login rows in one bulk statement, stamped STAMP."""
    store = open_store(url)
    await store.open()
    await store.close()
    columns = "id, player_id, ip, created_at, user_agent, is_success, modified_at, brand"
    values = f"'203.0.113.7', '2026-03-01 10:00:00', 'Mozilla/5.0 (X11; Linux x86_64)', 1, {STAMP}, 'default'"
    select = f"SELECT 'login-' || x, 'p-' || (x % 5000), {values}"
    if isinstance(store, SqliteStore):
        import sqlite3  # noqa: PLC0415

        connection = sqlite3.connect(store.path)
        connection.execute(
            f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}) "
            f"INSERT INTO logins ({columns}) {select} FROM n"
        )
        connection.commit()
        connection.close()
        return
    assert isinstance(store, PostgresStore)
    connection = await asyncpg.connect(POSTGRES, server_settings={"search_path": store.schema or "public"})
    await connection.execute(f"INSERT INTO logins ({columns}) {select} FROM generate_series(1, {rows}) AS x")
    await connection.close()


def _server_process(url: str, port: int, conn: Connection) -> None:
    """Serve the feeds of `url` in this process until told to stop."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from connectors.intarget.server import FeedServer  # noqa: PLC0415
    from gateway.metrics import Metrics  # noqa: PLC0415

    async def main() -> None:
        store = open_store(url)
        await store.open()
        settings = FeedSettings.model_validate({"listen": f"127.0.0.1:{port}", "token": TOKEN})
        server = FeedServer("bench", store, settings, Metrics(CollectorRegistry()))
        await server.start()
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await server.stop()
        await store.close()

    asyncio.run(main())


async def read_rate(port: int, pid: int, form: str) -> tuple[int, float, int, int]:
    """Rows, rows/s, baseline RSS and peak RSS of the serving process for one 1-second window of every row."""
    serving = psutil.Process(pid)
    params = {"from": stamp_text(STAMP), "to": stamp_text(STAMP + 1), "format": form}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    baseline = peak = serving.memory_info().rss
    newlines = received = 0
    started = time.perf_counter()
    last = 0.0
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}/intarget/logins", params=params, headers=headers) as response,
    ):
        marker = b"\r\n" if form == "csv" else b'"is_success":'  # once per row (and the CSV header)
        tail = b""  # a marker may straddle chunks; the carried tail is shorter than it, so none counts twice
        async for chunk in response.content.iter_chunked(1 << 16):
            received += len(chunk)
            window = tail + chunk
            newlines += window.count(marker)
            tail = window[-(len(marker) - 1) :]
            if time.monotonic() - last > 0.05:
                peak = max(peak, serving.memory_info().rss)
                last = time.monotonic()
    elapsed = time.perf_counter() - started
    rows = newlines - 1 if form == "csv" else newlines
    return rows, rows / elapsed, baseline, max(peak, serving.memory_info().rss)


async def bench(backend: str, events: int, rows: int, workdir: Path) -> None:
    """Both figures for one backend."""
    schema = f"intarget_bench_{uuid.uuid4().hex[:8]}"
    write_url = f"sqlite:///{workdir}/write.db" if backend == "sqlite" else f"{POSTGRES}?schema={schema}_w"
    read_url = f"sqlite:///{workdir}/read.db" if backend == "sqlite" else f"{POSTGRES}?schema={schema}_r"
    try:
        batches = mapped(events)
        per_event, per_record = await write_rate(write_url, batches)
        print(f"{backend:9} write: {per_event:9,.0f} events/s  ({per_record:9,.0f} row changes/s; "
              f"{sum(c for c, _ in batches):,} events in batches of {DEFAULTS.max_events})")  # fmt: skip
        await fill_logins(read_url, rows)
        port = free_port()
        parent, child = mp.Pipe()
        server = mp.get_context("spawn").Process(target=_server_process, args=(read_url, port, child))
        server.start()
        assert parent.recv() == "ready"
        assert server.pid is not None
        for form in ("csv", "json"):
            served, rate, baseline, peak = await read_rate(port, server.pid, form)
            print(f"{backend:9} read {form:4}: {rate:9,.0f} rows/s  ({served:,} rows; server RSS "
                  f"{baseline / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB)")  # fmt: skip
        parent.send("stop")
        server.join(30)
    finally:
        if backend == "postgres":
            connection = await asyncpg.connect(POSTGRES)
            for suffix in ("_w", "_r"):
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}{suffix}" CASCADE')
            await connection.close()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intarget-bench-") as workdir:
        for backend in args.backends.split(","):
            asyncio.run(bench(backend, args.events, args.rows, Path(workdir)))


if __name__ == "__main__":
    main()
