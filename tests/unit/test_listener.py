"""The hardened listener over real sockets: connection cap, header and keep-alive timeouts, TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from devkit.testbed.broker import make_throwaway_pki
from gateway.listener import Listener, ListenerLimits, ListenerTls

REQUEST = b"GET /ping HTTP/1.1\r\nHost: gw\r\n\r\n"


def _app() -> web.Application:
    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    return app


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A listener capped at 3 connections, with short timeouts."""
    limits = ListenerLimits(header_timeout=0.3, keepalive_timeout=0.6, max_connections=3)
    async with Listener(_app(), "127.0.0.1", 0, limits) as running:
        yield running


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `within` seconds."""
    try:
        await asyncio.wait_for(reader.read(), within)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return status


async def test_connections_past_the_cap_are_closed_and_room_frees_up(listener: Listener) -> None:
    """Three idle connections fill the cap; a fourth is closed at once; when one goes, a request is served."""
    held = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(REQUEST)
    assert await _closed_by_server(reader, 2)
    writer.close()
    held[0][1].close()
    await asyncio.sleep(0.05)
    assert (await _get(listener.port)).startswith(b"HTTP/1.1 200")
    for _, other in held[1:]:
        other.close()


async def test_a_connection_that_never_completes_its_headers_is_closed(listener: Listener) -> None:
    """A slow-loris client dribbling header bytes is dropped after header_timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: gw\r\n")

    async def dribble() -> None:
        for index in range(40):
            writer.write(f"X-Slow-{index}: 1\r\n".encode())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(dribble())
    try:
        assert await _closed_by_server(reader, 5)
    finally:
        task.cancel()
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(listener: Listener) -> None:
    """After a response, a connection that sends nothing more is closed after keepalive_timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(REQUEST)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    assert await _closed_by_server(reader, 5)
    writer.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_is_served_with_the_configured_certificate(tmp_path: Path) -> None:
    """With cert and key files, the listener serves HTTPS that a client trusting the CA can read."""
    pki = make_throwaway_pki(tmp_path)
    tls = ListenerTls(cert_file=pki.server_cert_file, key_file=pki.server_key_file)
    async with Listener(_app(), "127.0.0.1", 0, ListenerLimits(), tls) as running:
        assert running.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port, ssl=context)
        writer.write(REQUEST)
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        writer.close()


def test_tls_files_must_exist(tmp_path: Path) -> None:
    """A missing certificate or key is a configuration error at startup."""
    with pytest.raises(ValueError, match="file not found"):
        ListenerTls(cert_file=tmp_path / "nope.pem", key_file=tmp_path / "nope.key")
