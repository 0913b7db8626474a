"""The vendor HTTP transport: rate limiter, TLS setting, body cap, and redirects never followed."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from aiohttp import web
from prometheus_client import CollectorRegistry
from yarl import URL

from gateway.config import DestinationConfig
from gateway.http1 import WireUrl
from gateway.http_client import MAX_RESPONSE_BYTES, HttpTransport, RateLimiter, ssl_context, unsettled_result
from gateway.metrics import DestinationMetrics, Metrics
from gateway.outcomes import FailureKind, Outcome, classify


async def test_rate_limiter_spaces_requests() -> None:
    """At 50 requests/s with a burst of one, eleven requests cannot all go in less than 0.2 s (a lower bound)."""
    limiter = RateLimiter(rate=50, burst=1)
    started = time.monotonic()
    for _ in range(11):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.19


async def test_rate_limiter_allows_the_burst_at_once() -> None:
    """A full bucket lets `burst` requests through without waiting for a refill."""
    limiter = RateLimiter(rate=0.001, burst=5)
    for _ in range(5):
        await limiter.acquire()
    assert limiter._tokens < 1


def test_tls_verification_is_on_unless_disabled() -> None:
    """The default context verifies certificates and host names; verify=False is the only way out."""
    context = ssl_context(verify=True, ca_file=None)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert ssl_context(verify=False, ca_file=None) is False


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _transport() -> HttpTransport:
    config = DestinationConfig(name="d", connector="unibo")
    return HttpTransport(config, DestinationMetrics(Metrics(CollectorRegistry()), "d"), pool_size=2)


async def test_a_vendor_body_is_read_up_to_the_cap() -> None:
    """A 5 MiB answer is read only up to MAX_RESPONSE_BYTES and marked truncated, whether its length is stated or it
    comes chunked; a small one, or one of exactly the cap, is whole."""
    big = b"x" * (5 * 1024 * 1024)
    exact = b"y" * MAX_RESPONSE_BYTES

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/chunked"):
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            body = big if request.path == "/chunked-big" else b"ok"
            for start in range(0, len(body), 256 * 1024):
                await response.write(body[start : start + 256 * 1024])
            await response.write_eof()
            return response
        return web.Response(body={"/big": big, "/exact": exact}.get(request.path, b"ok"))

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner, url = await _serve(app)
    transport = _transport()
    try:
        response = await transport.request("POST", f"{url}/big", body=b"{}")
        assert (response.status, len(response.body), response.truncated) == (200, MAX_RESPONSE_BYTES, True)
        small = await transport.request("POST", f"{url}/small", body=b"{}")
        assert (small.body, small.truncated) == (b"ok", False)
        whole = await transport.request("POST", f"{url}/exact", body=b"{}")
        assert (whole.body == exact, whole.truncated) == (True, False)
        chunked = await transport.request("POST", f"{url}/chunked-big", body=b"{}")
        assert (chunked.status, len(chunked.body), chunked.truncated) == (200, MAX_RESPONSE_BYTES, True)
        chunked_small = await transport.request("POST", f"{url}/chunked-small", body=b"{}")
        assert (chunked_small.body, chunked_small.truncated) == (b"ok", False)
    finally:
        await transport.close()
        await runner.cleanup()


async def test_redirects_are_answers_never_followed_and_name_their_location() -> None:
    """A 307 comes back as the answer (the target never hears from us); its verdict is HALT naming the Location
    without query or user info."""
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/api":
            raise web.HTTPTemporaryRedirect("http://user:pw@127.0.0.1:1/elsewhere?key=secret")
        return web.Response(text="should never be reached")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
    runner, url = await _serve(app)
    transport = _transport()
    try:
        response = await transport.request("POST", f"{url}/api", body=b"{}", headers={"x-api-key": "k-secret"})
        assert response.status == 307 and hits == ["/api"]
        result = unsettled_result(response, classify(response.status))
        assert result.outcome is Outcome.HALT
        assert "http://127.0.0.1:1/elsewhere" in result.detail
        assert "secret" not in result.detail and "pw" not in result.detail
    finally:
        await transport.close()
        await runner.cleanup()


async def test_a_direct_request_reports_each_failure_by_kind_and_counts_it() -> None:
    """Through the lean client: a refused connection is `connection`, a malformed answer `client` (naming the
    error class only), a hanging server `timeout`; each is status 0, counted under the `error` class, and the
    request's key never appears in what is reported."""
    finished = asyncio.Event()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP k-secret\r\n\r\n")
        await finished.wait()
        writer.close()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await finished.wait()
        writer.close()

    registry = CollectorRegistry()
    config = DestinationConfig(name="d", connector="unibo", timeout=0.2)
    transport = HttpTransport(config, DestinationMetrics(Metrics(registry), "d"), pool_size=2)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        refused_port = free.getsockname()[1]
    garbage_server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    hang_server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        headers = {"x-api-key": "k-secret"}
        refused = await transport.request("POST", f"http://127.0.0.1:{refused_port}/", body=b"{}", headers=headers)
        malformed = await transport.request(
            "POST", f"http://127.0.0.1:{garbage_server.sockets[0].getsockname()[1]}/", body=b"{}", headers=headers
        )
        hung = await transport.request(
            "POST", f"http://127.0.0.1:{hang_server.sockets[0].getsockname()[1]}/", body=b"{}", headers=headers
        )
    finally:
        await transport.close()
        finished.set()
        for server in (garbage_server, hang_server):
            server.close()
            await server.wait_closed()
    assert (refused.status, refused.failure and refused.failure.kind) == (0, FailureKind.CONNECTION)
    assert (malformed.status, malformed.error) == (0, "client: InvalidResponse")
    assert (hung.status, hung.failure and hung.failure.kind) == (0, FailureKind.TIMEOUT)
    assert all("k-secret" not in response.error for response in (refused, malformed, hung))
    assert registry.get_sample_value("gateway_http_requests_total", {"destination": "d", "status_class": "error"}) == 3


async def test_a_wire_url_through_a_proxy_goes_out_as_it_is() -> None:
    """Through a proxy (aiohttp's client), a WireUrl is sent with its target unchanged (`%21` is not un-escaped), as
    the lean client sends it directly: a signed URL's bytes are the same either way."""
    lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = DestinationConfig(name="d", connector="unibo", proxy=f"http://127.0.0.1:{port}")
    transport = HttpTransport(config, DestinationMetrics(Metrics(CollectorRegistry()), "d"), pool_size=2)
    try:
        url = WireUrl(URL("http://vendor.test:8080"), "/api/v1/appuser/a%21b/events?enc=ff")
        response = await transport.request("POST", url, body=b"{}")
    finally:
        await transport.close()
        server.close()
    assert response.status == 204
    assert lines == [b"POST http://vendor.test:8080/api/v1/appuser/a%21b/events?enc=ff HTTP/1.1"]
