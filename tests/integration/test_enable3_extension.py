"""Enable3's ambassador endpoints and withdrawal callback on the gateway's HTTP listener, with a real broker."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from connectors.enable3.callback import SIGNATURE_HEADER, signature
from devkit.sandbox.faults import FaultPlan
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from gateway.logs import configure
from tests.integration.enable3_support import (
    ENABLE3_KEY,
    RunningEnable3,
    enable3,  # noqa: F401 - the fixture
    enable3_destination,
)
from tests.integration.harness import (
    InProcessGateway,
    gateway_config,
    read_topic,
    running_gateway,
    wait_for,
)

BEARER = "ambassador-bearer-token-0123456789"
SECRET = "callback-hmac-secret-abcdef"
CALLBACK = {
    "userId": "p-7",
    "optionId": "opt-1",
    "amount": "25.00",
    "tokenAmount": "2500",
    "tokenRate": "0.01",
    "transactionId": "tx-9001",
    "createdAt": "2026-11-01 12:00:00",
}


def _tree(broker: EmbeddedBroker, topic: str, url: str, **extra: Any) -> dict[str, Any]:
    destination = enable3_destination(
        url,
        ambassador={"enabled": True, "token": BEARER, "timeout": 1.0},
        withdrawal_callback={"secret": SECRET, "topic": f"{topic}.withdrawals", "produce_timeout": 2.0},
        **extra,
    )
    return gateway_config(broker.bootstrap_servers, topic, [destination])


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, Any]:
    async with session.request(method, url, headers=headers, data=body or None) as response:
        text = await response.text()
        return response.status, orjson.loads(text) if text else None


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for calling the gateway."""
    async with aiohttp.ClientSession() as client:
        yield client


def _ambassador(gateway: InProcessGateway, endpoint: str, status_class: str) -> float:
    return gateway.value(
        "gateway_ambassador_requests_total", destination="enable3", endpoint=endpoint, status_class=status_class
    )


def _callbacks(gateway: InProcessGateway, result: str) -> float:
    return gateway.value("gateway_callbacks_total", destination="enable3", callback="withdrawal", result=result)


def _base(gateway: InProcessGateway) -> str:
    assert gateway.gateway.http is not None
    return f"{gateway.gateway.http.url}/enable3/enable3"


async def test_ambassador_endpoints_forward_with_the_key_require_the_bearer_and_never_log_secrets(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    """widget-url, token and balance answer what Enable3 answers; no bearer is 401; logs never show key or token."""
    await broker.create_topic(f"{topic}.withdrawals", partitions=1)
    logs = io.StringIO()
    configure("debug", "json", stream=logs)
    try:
        async with running_gateway(_tree(broker, topic, enable3.url)) as gateway:
            base, auth = _base(gateway), {"Authorization": f"Bearer {BEARER}"}
            status, body = await _call(session, "GET", f"{base}/users/p%201/widget-url?lang=en&section=missions", auth)
            assert status == 200 and body["url"].startswith(enable3.url)
            assert "lang=en" in body["url"] and "section=missions" in body["url"]
            widget_token = enable3.sandbox.issued_tokens[-1]
            assert widget_token in body["url"]
            async with session.get(f"{base}/users/p-1/token", headers=auth) as response:
                assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
                assert await response.json() == {"token": enable3.sandbox.issued_tokens[-1]}
            status, body = await _call(session, "GET", f"{base}/users/p-1/balance", auth)
            assert status == 200 and body == {"balance": "0", "userExists": False}

            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": BEARER}):
                status, body = await _call(session, "GET", f"{base}/users/p-1/token", headers)
                assert status == 401 and "bearer" in body["error"]
            status, body = await _call(session, "GET", f"{base}/users/p-1/token?brand=nope", auth)
            assert status == 404 and "nope" in body["error"]

            # Vendor statuses pass through with a small JSON body; a transient fault is retried once.
            enable3.sandbox.faults.add(FaultPlan(kind="status", status=404, count=1, path_prefix="/api/v1/integration"))
            status, body = await _call(session, "GET", f"{base}/users/p-1/balance", auth)
            assert (status, body) == (404, {"error": "Enable3 answered 404", "status": 404})
            enable3.sandbox.faults.add(FaultPlan(kind="status", status=503, count=1, path_prefix="/api/v1/integration"))
            status, body = await _call(session, "GET", f"{base}/users/p-1/token", auth)
            assert status == 200 and body["token"] == enable3.sandbox.issued_tokens[-1]
            # A redirect is never followed (it would carry the key elsewhere): 502 naming where it pointed.
            moved = "http://127.0.0.1:9/elsewhere"
            redirect = FaultPlan(
                kind="redirect", status=308, location=moved, count=1, path_prefix="/api/v1/integration"
            )
            enable3.sandbox.faults.add(redirect)
            status, body = await _call(session, "GET", f"{base}/users/p-1/balance", auth)
            assert (status, body["location"]) == (502, moved)
            assert "redirected" in body["error"]
            enable3.sandbox.faults.add(FaultPlan(kind="hang", count=2, path_prefix="/api/v1/integration"))
            status, body = await _call(session, "GET", f"{base}/users/p-1/token", auth)
            assert (status, body["reason"]) == (504, "timeout")  # timeout enforced, one retry, then an answer

            assert _ambassador(gateway, "token", "2xx") == 2
            assert _ambassador(gateway, "token", "unauthorized") == 3
            assert _ambassador(gateway, "token", "error") == 1
            assert _ambassador(gateway, "balance", "4xx") == 1
            assert _ambassador(gateway, "balance", "3xx") == 1
            assert (
                gateway.value(
                    "gateway_ambassador_request_duration_seconds_count", destination="enable3", endpoint="widget-url"
                )
                == 1
            )
            metrics = await _call_text(session, f"{gateway.gateway.http.url}/metrics")  # type: ignore[union-attr]
    finally:
        configure("info", "json")
    text = logs.getvalue()
    assert '"ambassador"' in text  # the requests were logged at debug, so absence below means something
    for secret in (ENABLE3_KEY, BEARER, *enable3.sandbox.issued_tokens):
        assert secret not in text and secret not in metrics


async def _call_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


async def test_withdrawal_callback_stores_signed_bodies_once_and_refuses_bad_signatures(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    """A signed callback is produced unchanged, keyed by transactionId, before the 200; bad signatures get 401."""
    await broker.create_topic(f"{topic}.withdrawals", partitions=1)
    raw = orjson.dumps(CALLBACK) + b"\n"  # produced byte for byte, whitespace included
    signed = {SIGNATURE_HEADER: signature(SECRET.encode(), raw).decode(), "Content-Type": "application/json"}
    async with running_gateway(_tree(broker, topic, enable3.url)) as gateway:
        url = f"{_base(gateway)}/callbacks/withdrawal"
        assert await _call(session, "POST", url, signed, raw) == (200, {"status": "stored", "transactionId": "tx-9001"})
        forged = {SIGNATURE_HEADER: signature(b"not-the-secret", raw).decode()}
        assert (await _call(session, "POST", url, forged, raw))[0] == 401
        assert (await _call(session, "POST", url, {}, raw))[0] == 401
        tampered = raw.replace(b"25.00", b"2500.00")
        assert (await _call(session, "POST", url, signed, tampered))[0] == 401
        unsigned_garbage = b"[1, 2]"
        garbage_signed = {SIGNATURE_HEADER: signature(SECRET.encode(), unsigned_garbage).decode()}
        assert (await _call(session, "POST", url, garbage_signed, unsigned_garbage))[0] == 400
        records = await read_topic(broker.bootstrap_servers, f"{topic}.withdrawals", timeout=3)
        assert _callbacks(gateway, "accepted") == 1
        assert _callbacks(gateway, "bad_signature") == 3
    assert [(r.key, r.value) for r in records] == [(b"tx-9001", raw)]


async def test_withdrawal_callback_on_its_own_listener_exposes_nothing_else(
    broker: EmbeddedBroker,
    topic: str,
    enable3: RunningEnable3,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    """With `withdrawal_callback.listen`, the callback is served there only: that port has no /metrics, /readyz or
    ambassador, and the gateway listener no longer has the callback."""
    await broker.create_topic(f"{topic}.withdrawals", partitions=1)
    port = free_port()
    destination = enable3_destination(
        enable3.url,
        ambassador={"enabled": True, "token": BEARER, "timeout": 1.0},
        withdrawal_callback={"secret": SECRET, "topic": f"{topic}.withdrawals", "listen": f"127.0.0.1:{port}"},
    )
    raw = orjson.dumps(CALLBACK)
    signed = {SIGNATURE_HEADER: signature(SECRET.encode(), raw).decode(), "Content-Type": "application/json"}
    async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])) as gateway:
        own = f"http://127.0.0.1:{port}"
        path = "/enable3/enable3/callbacks/withdrawal"
        assert (await _call(session, "POST", own + path, signed, raw))[0] == 200
        for exposed in ("/metrics", "/readyz", "/enable3/enable3/users/p-1/token"):
            async with session.get(own + exposed) as response:
                assert response.status == 404, exposed
        assert gateway.gateway.http is not None
        async with session.post(gateway.gateway.http.url + path, data=raw, headers=signed) as response:
            assert response.status in (404, 405)
        assert _callbacks(gateway, "accepted") == 1
    records = await read_topic(broker.bootstrap_servers, f"{topic}.withdrawals", timeout=3)
    assert [(r.key, r.value) for r in records] == [(b"tx-9001", raw)]


async def test_withdrawal_callback_answers_503_when_kafka_is_down(
    enable3: RunningEnable3,  # noqa: F811
    session: aiohttp.ClientSession,
) -> None:
    """With the broker gone, a valid callback is not acknowledged: 503, so Enable3 retries."""
    with EmbeddedBroker() as own:
        topic = "e3-callback-down"
        await own.create_topic(topic, partitions=1)
        await own.create_topic(f"{topic}.dlq", partitions=1)
        await own.create_topic(f"{topic}.withdrawals", partitions=1)
        raw = orjson.dumps(CALLBACK)
        signed = {SIGNATURE_HEADER: signature(SECRET.encode(), raw).decode()}
        async with running_gateway(_tree(own, topic, enable3.url)) as gateway:
            url = f"{_base(gateway)}/callbacks/withdrawal"
            assert (await _call(session, "POST", url, signed, raw))[0] == 200
            own.stop()
            status, body = await _call(session, "POST", url, signed, raw)
            assert status == 503 and "retry" in body["error"]
            await wait_for(
                lambda: _callbacks(gateway, "unavailable") == 1,
                5,
                "the unavailable count",
            )
