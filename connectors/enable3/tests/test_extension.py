"""The Enable3 extension mounts only what the destination enables, and answers 503 before it has started."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from connectors.enable3.extension import Enable3Extension
from gateway.binding import parse
from gateway.extensions import ExtensionContext, extensions_of
from gateway.metrics import Metrics


def _context(**destination: Any) -> ExtensionContext:
    resolved = parse(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
            "destinations": [
                {"name": "e3", "connector": "enable3", "credentials": {"default": {"api_key": "k"}}, **destination}
            ],
        },
        env={},
    )
    return ExtensionContext(
        resolved.destinations[0], resolved.gateway.kafka, Metrics(CollectorRegistry()), asyncio.Event()
    )


def _paths(extension: Enable3Extension) -> list[str]:
    return [route.path for route in extension.routes]  # type: ignore[attr-defined]


def test_nothing_is_mounted_unless_enabled() -> None:
    """A destination that enables neither part gets no extension (so no routes at all)."""
    assert extensions_of([_context()]) == {}
    assert extensions_of([_context(ambassador={"enabled": False, "token": "t" * 20})]) == {}


def test_each_part_mounts_only_its_own_routes() -> None:
    """The ambassador alone mounts three GET routes; the callback alone mounts one POST route."""
    ambassador = extensions_of([_context(ambassador={"enabled": True, "token": "t" * 20})])["e3"]
    assert isinstance(ambassador, Enable3Extension)
    assert _paths(ambassador) == [
        "/enable3/e3/users/{user}/widget-url",
        "/enable3/e3/users/{user}/token",
        "/enable3/e3/users/{user}/balance",
    ]
    callback = extensions_of([_context(withdrawal_callback={"secret": "s" * 16, "topic": "w"})])["e3"]
    assert isinstance(callback, Enable3Extension)
    assert _paths(callback) == ["/enable3/e3/callbacks/withdrawal"]


async def test_handlers_answer_503_before_start() -> None:
    """Routes are mounted before the listener starts; until `start` ran they answer 503, never a half-built answer."""
    extension = extensions_of(
        [
            _context(
                ambassador={"enabled": True, "token": "t" * 20}, withdrawal_callback={"secret": "s" * 16, "topic": "w"}
            )
        ]
    )["e3"]
    for route in extension.routes:
        assert isinstance(route, web.RouteDef)
        request = make_mocked_request(route.method, route.path.replace("{user}", "p1"), match_info={"user": "p1"})
        response = await route.handler(request)
        assert isinstance(response, web.Response) and response.status == 503


def test_replay_gets_no_extension() -> None:
    """`gateway replay` (serve=False) builds nothing: the running gateway already serves the routes and producer."""
    context = _context(ambassador={"enabled": True, "token": "t" * 20})
    replaying = ExtensionContext(context.destination, context.kafka, context.metrics, context.stopping, serve=False)
    assert extensions_of([replaying]) == {}


async def test_a_user_id_that_would_leave_the_user_path_is_refused() -> None:
    """`.` and `..` would be normalized out of `/integration/user/{id}/...`, reaching other paths with our key: 400."""
    extension = extensions_of([_context(ambassador={"enabled": True, "token": "t" * 20})])["e3"]
    await extension.start()
    try:
        for route in extension.routes:
            assert isinstance(route, web.RouteDef)
            for user in (".", ".."):
                request = make_mocked_request(
                    "GET", route.path, headers={"Authorization": "Bearer " + "t" * 20}, match_info={"user": user}
                )
                response = await route.handler(request)
                assert isinstance(response, web.Response) and response.status == 400
    finally:
        await extension.stop()


async def _raw_status(port: int, path: str, authorization: bytes) -> bytes:
    """The status code of a GET sent as raw bytes (a hostile client need not encode its headers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\nAuthorization: " + authorization
                 + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return status_line.split()[1]


async def test_a_non_ascii_or_empty_bearer_gets_401_not_500() -> None:
    """Non-ASCII bytes in Authorization (UTF-8 or not), or `Bearer` without a token: 401, never a 500."""
    extension = extensions_of([_context(ambassador={"enabled": True, "token": "t" * 20})])["e3"]
    app = web.Application()
    app.add_routes(extension.routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await extension.start()
    try:
        for header in (b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe-token", b"Bearer", b"Bearer    "):
            assert await _raw_status(port, "/enable3/e3/users/p1/token", header) == b"401", header
    finally:
        await extension.stop()
        await runner.cleanup()
