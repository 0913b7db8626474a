"""An InTarget-like poller (for the demo and tests): reads consecutive closed windows of each feed, as InTarget does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from connectors.intarget.feeds import FEEDS
from connectors.intarget.formats import stamp_text
from gateway.waits import wait_event


@dataclass
class IntargetPoller:
    """Polls `[cursor, cursor + window)` for every feed once each window has closed (minus `delay` seconds, like
    InTarget's "previous minute minus N" offset), and keeps the latest version of every row by natural id."""

    base_url: str
    start: int
    token: str | None = None
    basic: tuple[str, str] | None = None
    window: int = 60
    delay: int = 0
    feeds: Sequence[str] = tuple(FEEDS)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.cursor = self.start
        self.rows = {feed: {} for feed in self.feeds}

    def _auth(self) -> tuple[dict[str, str], aiohttp.BasicAuth | None]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers, aiohttp.BasicAuth(*self.basic) if self.basic else None

    async def poll(self, session: aiohttp.ClientSession, now: float | None = None) -> int:
        """Read every window that has closed by `now` (default: this host's clock); rows read."""
        now = time.time() if now is None else now
        headers, auth = self._auth()
        read = 0
        while self.cursor + self.window <= now - self.delay:
            params = {"from": stamp_text(self.cursor), "to": stamp_text(self.cursor + self.window), "format": "json"}
            for feed in self.feeds:
                url = f"{self.base_url}/intarget/{feed}"
                async with session.get(url, params=params, headers=headers, auth=auth) as response:
                    self.requests += 1
                    if response.status != 200:  # 503 while writes commit: this window is read again next time
                        self.refused += 1
                        return read
                    found = orjson.loads(await response.read())
                key = FEEDS[feed].key
                for row in found:
                    self.rows[feed][row[key]] = row
                read += len(found)
            self.cursor += self.window
        return read

    async def run(self, stopping: asyncio.Event, interval: float = 1.0) -> None:
        """Poll until `stopping` is set."""
        async with aiohttp.ClientSession() as session:
            while not stopping.is_set():
                await self.poll(session)
                await wait_event(stopping, interval)
