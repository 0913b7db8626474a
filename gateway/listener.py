"""The gateway's HTTP listeners (its own, InTarget's feed, Enable3's callback) hardened for exposure: TLS, a cap on
open connections, and time limits for clients that connect and then send nothing or dribble headers.

aiohttp's keep-alive timer already closes a connection that sits without a complete request after a response
(it also covers headers sent byte by byte). What it lacks is a shorter bound for a new connection's first request
and a connection cap: `GuardedSite` adds both around aiohttp's own request handler.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.durations import Duration

log = structlog.get_logger("gateway.listener")


class ListenerLimits(BaseModel):
    """What one client may hold of a listener."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header_timeout: Duration = Field(10.0, gt=0, description="seconds a new connection has to send a request's headers")
    keepalive_timeout: Duration = Field(15.0, gt=0, description="seconds an idle keep-alive connection is kept open")
    max_connections: int = Field(256, ge=1, description="open connections at once; more are closed on accept")
    body_timeout: Duration = Field(10.0, gt=0, description="seconds to receive a request body (callbacks)")


class ListenerTls(BaseModel):
    """Serve HTTPS with this certificate chain and private key (PEM files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path
    key_file: Path

    @field_validator("cert_file", "key_file")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    def context(self) -> ssl.SSLContext:
        """A server TLS context (TLS 1.2 or later)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class _Connections:
    """Open connections of one listener."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's request handler for one connection, refused past the cap and closed when its first request's
    headers are not complete within `header_timeout`."""

    def __init__(self, handler: Any, connections: _Connections, header_timeout: float) -> None:
        self._handler = handler
        self._connections = connections
        self._header_timeout = header_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        connections = self._connections
        if connections.open >= connections.limit:
            connections.refused += 1
            if connections.refused == 1 or connections.refused % 1000 == 0:
                log.warning("listener at its connection cap; refusing", limit=connections.limit)
            _abort(transport)
            return
        connections.open += 1
        self._counted = True
        self._handler.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_later(self._header_timeout, self._first_request_due, transport)

    def _first_request_due(self, transport: asyncio.BaseTransport) -> None:
        # aiohttp counts requests whose headers were parsed; without the attribute, assume one (never a false close).
        if getattr(self._handler, "_request_count", 1) == 0:
            _abort(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._counted:
            self._connections.open -= 1
            self._counted = False
            self._handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._counted:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._counted else None

    def pause_writing(self) -> None:
        if self._counted:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._counted:
            self._handler.resume_writing()


def _abort(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site like aiohttp's TCPSite, each connection behind the limits; `.port` is the bound port."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ListenerLimits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self.port = port
        self._limits = limits
        self.connections = _Connections(limits.max_connections)

    @property
    def name(self) -> str:
        """The listener's URL."""
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        await super().start()
        server = self._runner.server
        assert server is not None
        limits, connections = self._limits, self.connections

        def guarded() -> asyncio.Protocol:
            return _GuardedConnection(server(), connections, limits.header_timeout)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            guarded, self._host, self.port, ssl=self._ssl_context, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]


class Listener:
    """An aiohttp application served behind `limits` (and TLS when given) inside `async with`."""

    def __init__(
        self, app: web.Application, host: str, port: int, limits: ListenerLimits, tls: ListenerTls | None = None
    ) -> None:
        # access_log off: a feed query may carry its token. keepalive_timeout is aiohttp's idle timer.
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.keepalive_timeout)
        self._host = host
        self._port = port
        self._limits = limits
        self._tls = tls
        self._site: GuardedSite | None = None

    async def start(self) -> None:
        """Bind and serve."""
        await self._runner.setup()
        context = self._tls.context() if self._tls is not None else None
        self._site = GuardedSite(self._runner, self._host, self._port, self._limits, context)
        await self._site.start()

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._site is not None:
            self._site = None
            await self._runner.cleanup()

    async def __aenter__(self) -> Listener:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        return self._site.port if self._site is not None else self._port

    @property
    def url(self) -> str:
        """Base URL."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"
