"""The feed server InTarget polls: `GET /intarget/<feed>?from=..&to=..`, streamed as CSV or JSON, on its own port."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import time
from datetime import datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs

from aiohttp import web

from connectors.intarget.auth import FeedAuth
from connectors.intarget.feeds import FEEDS
from connectors.intarget.formats import FeedEncoder
from connectors.intarget.store import FeedStore, StoreUnavailable
from gateway.listener import Listener
from gateway.logs import destination_logger

if TYPE_CHECKING:
    from connectors.intarget.config import FeedSettings
    from gateway.metrics import Metrics


TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
CONTENT_TYPES: Final = {"csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8"}


class BadRequest(Exception):
    """A request the feed cannot answer as asked; the message says why."""


def parse_time(name: str, values: list[str] | None) -> int:
    """A `YYYY-MM-DD HH:MM:SS` UTC query parameter as epoch seconds."""
    if not values:
        raise BadRequest(f"missing `{name}`: expected UTC YYYY-MM-DD HH:MM:SS, e.g. 2026-01-31+23:59:00")
    try:
        parsed = datetime.strptime(values[0], TIME_FORMAT)
    except ValueError:
        raise BadRequest(f"`{name}` is not UTC YYYY-MM-DD HH:MM:SS: {values[0][:40]!r}") from None
    return calendar.timegm(parsed.timetuple())


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


class FeedServer:
    """Serves one destination's store to InTarget."""

    def __init__(self, destination: str, store: FeedStore, settings: FeedSettings, metrics: Metrics) -> None:
        self.destination = destination
        self._log = destination_logger("connectors.intarget.server", destination)
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.auth = FeedAuth(settings)
        self._listener: Listener | None = None
        self.port = settings.port

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/intarget/{feed}", self.handle)
        return app

    async def start(self) -> None:
        """Listen on `feed.listen`, behind the listener limits, with TLS when configured (no access log: the query
        may carry the token)."""
        settings = self.settings
        listener = Listener(self.app(), settings.host, settings.port, settings.limits, settings.tls)
        await listener.start()
        self._listener = listener
        self.port = listener.port
        self._log.info("feed server listening", url=listener.url)

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One feed request: allow-list, auth, parameters, watermark, then the streamed rows."""
        feed = request.match_info["feed"]
        label = feed if feed in FEEDS else "unknown"
        started = time.perf_counter()
        response = await self._answer(request, feed)
        self.metrics.feed_requests.labels(self.destination, label, str(response.status)).inc()
        self.metrics.feed_request_duration.labels(self.destination, label).observe(time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request, feed: str) -> web.StreamResponse:  # noqa: PLR0911 - one per refusal
        refusal = self.auth.check(request)
        if refusal == 403:
            return _plain(403, "forbidden")
        if refusal == 401:
            return _plain(401, "unauthorized", self.auth.challenge)
        query = parse_qs(request.rel_url.raw_query_string, keep_blank_values=True)  # `+` and `%20` both mean space
        try:
            if feed not in FEEDS:
                raise BadRequest(f"unknown feed {feed[:40]!r}; feeds: {', '.join(FEEDS)}")
            start, end = parse_time("from", query.get("from")), parse_time("to", query.get("to"))
            if start >= end:
                raise BadRequest("`from` must be before `to` (the window is from <= t < to)")
            form = query.get("format", [self.settings.format])[0]
            if form not in CONTENT_TYPES:
                raise BadRequest(f"unknown format {form[:20]!r}; formats: csv, json")
            brand = query.get("brand", [None])[0] or None
            now = await self.store.now()
            if end > now:
                store_time = time.strftime(TIME_FORMAT, time.gmtime(now))
                raise BadRequest(f"the window ends in the future: `to` must be at most the store time {store_time}")
        except BadRequest as error:
            return _plain(400, f"bad request: {error}")
        except StoreUnavailable:
            return _plain(503, "the store is unavailable; retry later", {"Retry-After": "5"})
        try:
            if not await self.store.window_closed(end, self.settings.watermark_wait):
                return _plain(503, "writes up to `to` are still committing; retry later", {"Retry-After": "1"})
            custom = await self.store.custom_fields() if feed == "players" else []
        except StoreUnavailable:
            return _plain(503, "the store is unavailable; retry later", {"Retry-After": "5"})
        return await self._stream(request, feed, start, end, brand, form, FeedEncoder(feed, custom))

    async def _stream(
        self, request: web.Request, feed: str, start: int, end: int, brand: str | None, form: str, encoder: FeedEncoder
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPES[form], "Cache-Control": "no-store"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        rows_counter = self.metrics.feed_rows.labels(self.destination, feed)
        first = True
        await response.write(b"[" if form == "json" else encoder.csv_header())
        async with contextlib.aclosing(self.store.rows(feed, start, end, brand, self.settings.chunk_rows)) as chunks:
            # A failure past this point cannot change the status: the response ends without its last chunk, so
            # the client sees a broken transfer rather than a short window.
            async for chunk in chunks:
                # Encoding a chunk is CPU work proportional to its width: off the event loop, so a wide window
                # never stalls deliveries, metrics or other feed requests.
                if form == "json":
                    body = await asyncio.to_thread(encoder.json_rows, chunk, first)
                else:
                    body = await asyncio.to_thread(encoder.csv_rows, chunk)
                await response.write(body)
                first = False
                rows_counter.inc(len(chunk))
        if form == "json":
            await response.write(b"]")
        await response.write_eof()
        return response
