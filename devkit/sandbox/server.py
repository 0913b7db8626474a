"""Serving sandbox apps: `SandboxServer` (tests, the demo) and `run_sandbox_forever` (the `gateway sandbox` CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from devkit.sandbox.kind import SandboxKind

# Sandboxes hold hanging requests until shutdown releases them, so pending handlers finish quickly; this only bounds
# a handler that misbehaves.
_SHUTDOWN_TIMEOUT = 5.0


class SandboxServer:
    """Runs one aiohttp app on `host`:`port` (0 = a free port) inside `async with`; `.url` is its base URL."""

    def __init__(
        self, app: web.Application, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """`ssl_context` serves HTTPS (e.g. with a throwaway CA, to test the gateway's TLS verification)."""
        self._ssl_context = ssl_context
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:54321`."""
        if self._url is None:
            raise RuntimeError("the sandbox server is not started")
        return self._url

    @property
    def port(self) -> int:
        """The bound port (the free port chosen by the OS when constructed with port 0)."""
        return int(self.url.rsplit(":", 1)[1])

    async def start(self) -> None:
        """Bind and start serving; prefer `async with`."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl_context)
            await site.start()
        except BaseException:
            await self.close()
            raise
        self._url = _base_url(self._host, runner.addresses[0][1], "https" if self._ssl_context else "http")

    async def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _base_url(host: str, port: int, scheme: str = "http") -> str:
    """URL for clients: a wildcard bind address is reached through loopback; IPv6 literals get brackets."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - mapping, not binding
    try:
        if ipaddress.ip_address(shown).version == 6:
            shown = f"[{shown}]"
    except ValueError:
        pass  # a host name
    return f"{scheme}://{shown}:{port}"


@dataclass(frozen=True, slots=True)
class Served:
    """How `gateway sandbox` serves one sandbox: port, accepted keys (api key -> tenant), the kind's settings."""

    kind: SandboxKind[Any]
    port: int
    keys: dict[str, str]
    settings: dict[str, str]


def _tenants(keys: dict[str, str]) -> str:
    return ", ".join(sorted(set(keys.values()))) or "none: no key is accepted"


async def run_sandbox_forever(host: str, served: Sequence[Served]) -> None:
    """Serve these sandboxes until cancelled, printing each one's URL and endpoints."""
    async with contextlib.AsyncExitStack() as stack:
        for entry in served:
            sandbox = entry.kind.build(entry.keys, entry.settings, None)
            server = await stack.enter_async_context(SandboxServer(sandbox.app(), host, entry.port))
            print(f"{entry.kind.name} sandbox at {server.url}  (tenants: {_tenants(entry.keys)})", flush=True)
            for line in entry.kind.endpoints:
                print("  " + line.format(url=server.url), flush=True)
        await asyncio.Event().wait()


__all__ = ["SandboxServer", "Served", "run_sandbox_forever"]
