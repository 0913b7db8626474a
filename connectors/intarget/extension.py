"""The InTarget extension: opens the feed store, serves the feeds on their own listener, purges old rows."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from connectors.intarget.config import IntargetSettings
from connectors.intarget.server import FeedServer
from connectors.intarget.store import Clock, FeedStore, StoreUnavailable
from connectors.intarget.store_postgres import PostgresStore
from connectors.intarget.store_sqlite import SqliteStore
from gateway.backoff import FullJitterBackoff
from gateway.extensions import Extension, ExtensionContext
from gateway.retries import retry

log = structlog.get_logger("connectors.intarget.extension")


def open_store(settings: IntargetSettings, clock: Clock | None = None) -> FeedStore:
    """The store its URL names (not yet opened)."""
    path = settings.sqlite_path
    if path is not None:
        return SqliteStore(path, clock)
    password = settings.store_password.get_secret_value() if settings.store_password is not None else None
    return PostgresStore(settings.store, clock, password=password)


class FeedExtension(Extension):
    """Store + feed server + retention purge of one InTarget destination; `shared` is the store."""

    def __init__(self, context: ExtensionContext, clock: Clock | None = None) -> None:
        settings: IntargetSettings = context.destination.settings
        store = open_store(settings, clock)
        super().__init__(routes=(), shared=store)
        self.store = store
        self.settings = settings
        self.server = FeedServer(context.destination.name, store, settings.feed, context.metrics)
        self.stopping = context.stopping
        self.serve = context.serve
        self._purge: asyncio.Task[None] | None = None

    async def _open_store(self) -> bool:
        """Open the store, retrying while it is unreachable (e.g. PostgreSQL restarting); False if asked to stop."""
        return await retry(
            self.store.open,
            retry_on=StoreUnavailable,
            backoff=FullJitterBackoff(initial=0.5, maximum=15.0),
            log=log,
            message="feed store unreachable, retrying",
            describe=lambda error: str(error)[:200],
            stopping=self.stopping,
        )

    async def start(self) -> None:
        """Open the store, then listen; the purge runs in the background (only the store when not serving)."""
        if not await self._open_store():
            return  # stopping before the store came up: the pipeline's writes retry until it drains
        if not self.serve:
            return
        await self.server.start()
        if self.settings.retention:
            self._purge = asyncio.create_task(self._purge_forever(), name="intarget-purge")

    async def stop(self) -> None:
        """Stop listening, stop purging, close the store."""
        await self.server.stop()
        if self._purge is not None:
            self._purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purge
            self._purge = None
        await self.store.close()

    async def _purge_forever(self) -> None:
        while True:
            try:
                deleted = await self.store.purge(self.settings.retention)
                if any(deleted.values()):
                    log.info("retention purge", deleted=deleted)
            except StoreUnavailable as error:
                log.warning("retention purge failed; trying again later", error=str(error)[:200])
            await asyncio.sleep(self.settings.purge_interval)
