"""One helper turns a vendor's answer and its outcome into a SendResult; a transport failure is typed, never parsed."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry

from gateway.config import DestinationConfig
from gateway.http_client import HttpResponse, HttpTransport
from gateway.metrics import DestinationMetrics, Metrics
from gateway.outcomes import FailureKind, Outcome, SendResult, TransportFailure
from gateway.vendor_results import MAX_REJECT_DETAIL, send_result


def _answer(status: int, body: bytes = b"", **headers: str) -> HttpResponse:
    return HttpResponse(status, body, CIMultiDictProxy(CIMultiDict(headers)))


def _transport(timeout: float = 10.0) -> HttpTransport:
    config = DestinationConfig(name="d", connector="unibo", timeout=timeout)
    return HttpTransport(config, DestinationMetrics(Metrics(CollectorRegistry()), "d"), pool_size=2)


def test_each_outcome_becomes_its_result() -> None:
    """DELIVERED settles; REJECT carries the vendor's answer (or the connector's detail) and the named records;
    RETRY carries Retry-After; HALT carries the answer; a partial send's settled part rides along."""
    assert send_result(_answer(204), Outcome.DELIVERED) == SendResult(Outcome.DELIVERED, 204)
    refused = send_result(_answer(400, b"x" * 5000), Outcome.REJECT, rejected=frozenset({1}))
    assert (refused.outcome, refused.detail, refused.rejected) == (
        Outcome.REJECT,
        "x" * MAX_REJECT_DETAIL,
        frozenset({1}),
    )
    named = send_result(_answer(404), Outcome.REJECT, detail="no such user", delivered=frozenset({0}), duplicates=1)
    assert (named.detail, named.delivered, named.duplicates) == ("no such user", frozenset({0}), 1)
    busy = send_result(_answer(503, b"busy", **{"Retry-After": "7"}), Outcome.RETRY, reason="partial_store")
    assert (busy.outcome, busy.status, busy.reason, busy.detail, busy.retry_after) == (
        Outcome.RETRY,
        503,
        "partial_store",
        "busy",
        7.0,
    )
    halted = send_result(_answer(401, b"bad key"), Outcome.HALT)
    assert (halted.outcome, halted.detail, halted.retry_after) == (Outcome.HALT, "bad key", None)


def test_a_transport_failure_is_retried_with_its_kind() -> None:
    """No answer: the reason is the failure's kind and the detail names the exception class, read from the typed
    failure (a vendor body saying `timeout: x` changes nothing)."""
    reset = HttpResponse.failed(FailureKind.CONNECTION, "ServerDisconnectedError")
    result = send_result(reset, Outcome.RETRY)
    assert (result.status, result.reason, result.detail, result.retry_after) == (
        0,
        "connection",
        "connection: ServerDisconnectedError",
        None,
    )
    assert send_result(_answer(500, b"timeout: upstream"), Outcome.RETRY).reason == ""
    assert str(TransportFailure(FailureKind.TIMEOUT)) == "timeout" and _answer(200).error == ""


async def test_the_transport_reports_a_refused_connection_and_a_timeout_by_kind() -> None:
    """A closed port is CONNECTION; a vendor slower than the timeout is TIMEOUT (it answers only once released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]

    released = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await released.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    transport = _transport(timeout=0.2)
    try:
        refused = await transport.request("POST", f"http://127.0.0.1:{closed}/", body=b"{}")
        assert refused.failure is not None and refused.failure.kind is FailureKind.CONNECTION
        assert refused.status == 0 and refused.failure.cause
        late = await transport.request("POST", f"http://127.0.0.1:{runner.addresses[0][1]}/", body=b"{}")
        assert late.failure == TransportFailure(FailureKind.TIMEOUT)
        assert send_result(late, Outcome.RETRY).reason == "timeout"
    finally:
        released.set()
        await transport.close()
        await runner.cleanup()
