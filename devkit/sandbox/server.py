"""Serving sandbox apps: `SandboxServer` (tests, the demo) and `run_sandbox_forever` (the `gateway sandbox` CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.sandbox.userwise.sandbox import DEFAULT_SECRET, UserWiseSandbox

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
class Enable3Options:
    """How `gateway sandbox` serves the Enable3 sandbox: port and accepted X-API-KEY values (key -> tenant)."""

    port: int = 9202
    keys: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class UserWiseOptions:
    """How `gateway sandbox` serves the UserWise sandbox: port, accepted app keys (key -> tenant), company secret."""

    port: int = 9203
    keys: dict[str, str] | None = None
    secret: str = DEFAULT_SECRET


def _tenants(keys: dict[str, str]) -> str:
    return ", ".join(sorted(set(keys.values()))) or "none: no key is accepted"


@contextlib.asynccontextmanager
async def _serve_enable3(host: str, options: Enable3Options) -> AsyncIterator[None]:
    keys = options.keys if options.keys is not None else {"sandbox-enable3-key": "default"}
    enable3 = Enable3Sandbox(keys)
    async with SandboxServer(enable3.app(), host, options.port) as server:
        print(f"enable3 sandbox at {server.url}  (tenants: {_tenants(keys)})", flush=True)
        print(f"  events:  POST {server.url}/api/v1/event  (+ /api/v1/revenue, /api/v1/segment/users)", flush=True)
        print(f"  widget:  GET {server.url}/api/v1/integration/user/<id>/widget|token|balance", flush=True)
        print(f"  report:  GET {server.url}/_sandbox/enable3/received", flush=True)
        print(f"  faults:  POST|GET|DELETE {server.url}/_sandbox/faults", flush=True)
        yield


@contextlib.asynccontextmanager
async def _serve_userwise(host: str, options: UserWiseOptions) -> AsyncIterator[None]:
    keys = options.keys if options.keys is not None else {"sandbox-userwise-key": "default"}
    userwise = UserWiseSandbox(keys, options.secret)
    async with SandboxServer(userwise.app(), host, options.port) as server:
        print(f"userwise sandbox at {server.url}  (tenants: {_tenants(keys)})", flush=True)
        print(f"  events:  POST {server.url}/api/v1/appuser/{{id}}/events|revenue_events|attributes", flush=True)
        print(f"  report:  GET {server.url}/_sandbox/userwise/received[?ids=1&player=ID]", flush=True)
        print(f"  faults:  POST|GET|DELETE {server.url}/_sandbox/faults", flush=True)
        yield


async def run_sandbox_forever(
    host: str,
    unibo_port: int,
    unibo_keys: dict[str, str],
    *,
    enable3: Enable3Options | None = None,
    userwise: UserWiseOptions | None = None,
) -> None:
    """Serve the Unibo sandbox (`unibo_keys`: accepted api key -> tenant name) and, when given, the Enable3 and
    UserWise ones, until cancelled, printing their URLs."""
    unibo = UniboSandbox(unibo_keys)
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(SandboxServer(unibo.app(), host, unibo_port))
        print(f"unibo sandbox at {server.url}  (tenants: {_tenants(unibo_keys)})", flush=True)
        print(f"  events:  POST {server.url}/api/v1/events", flush=True)
        print(f"  report:  GET {server.url}/_sandbox/unibo/received", flush=True)
        print(f"  faults:  POST|GET|DELETE {server.url}/_sandbox/faults", flush=True)
        if enable3 is not None:
            await stack.enter_async_context(_serve_enable3(host, enable3))
        if userwise is not None:
            await stack.enter_async_context(_serve_userwise(host, userwise))
        await asyncio.Event().wait()


__all__ = ["Enable3Options", "SandboxServer", "UserWiseOptions", "run_sandbox_forever"]
