"""InTarget's registration: the gateway serves its feeds from a SQLite store, and a poller reads them back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from connectors.intarget.feeds import FEEDS
from devkit.sandbox.intarget.poller import IntargetPoller
from devkit.sandbox.kind import ReaderKind
from gateway.connector import VendorRecord

FEED_TOKEN = "devkit-intarget-feed-token"  # noqa: S105 - the stand-in's own feed token, for loopback feeds only


class PollerReader:
    """Reads InTarget's feeds from closed one-second windows, from when the traffic starts."""

    how = "  (read back by an InTarget-like poller from closed 1 s feed windows)"

    def __init__(self, port: int) -> None:
        self.poller = IntargetPoller(f"http://127.0.0.1:{port}", start=int(time.time()) - 1, token=FEED_TOKEN, window=1)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read from now on, every half second."""
        self.poller.cursor = int(time.time()) - 1
        self._task = asyncio.get_running_loop().create_task(self.poller.run(self._stopping, interval=0.5))

    async def stop(self) -> None:
        """Stop polling (after the read in progress)."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    def received(self) -> set[str]:
        """`feed:key` of every row read."""
        return {f"{feed}:{key}" for feed, rows in self.poller.rows.items() for key in rows}

    def expected_id(self, record: VendorRecord) -> str | None:
        """`feed:key` of the row a record becomes; None for what is no feed of its own (e.g. the game catalog)."""
        feed = "casino_sessions" if record.route == "casino_actions" else record.route
        if feed not in FEEDS:
            return None
        return f"{feed}:{orjson.loads(record.body)[FEEDS[feed].key]}"


def _destination(workdir: Path, port: int) -> dict[str, Any]:
    return {
        "store": f"sqlite:///{workdir / 'intarget.db'}",
        "feed": {"listen": f"127.0.0.1:{port}", "token": FEED_TOKEN},
    }


KIND = ReaderKind(name="intarget", destination=_destination, reader=PollerReader)
