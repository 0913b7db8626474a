"""Vendor HTTP transport end to end: TLS verification with a private CA, and an authenticated egress proxy."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker, ThrowawayPki, make_throwaway_pki
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import UNIBO_KEY
from tests.integration.harness import (
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """A throwaway CA with a server certificate for 127.0.0.1."""
    return make_throwaway_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def https_unibo(pki: ThrowawayPki) -> AsyncIterator[tuple[UniboSandbox, str]]:
    """A Unibo sandbox served over HTTPS with a certificate from the throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    sandbox = UniboSandbox({UNIBO_KEY: "default"})
    async with SandboxServer(sandbox.app(), ssl_context=context) as server:
        yield sandbox, server.url


def _events(seed: int) -> list[dict[str, object]]:
    return [e for e in Traffic(seed=seed, players=50, prefix=f"tls{seed}").stream(300) if unibo_takes(e)]


async def test_tls_with_the_operators_ca_bundle_delivers(
    broker: EmbeddedBroker, topic: str, https_unibo: tuple[UniboSandbox, str], pki: ThrowawayPki
) -> None:
    """With tls.ca_file naming the private CA, delivery over HTTPS succeeds."""
    sandbox, url = https_unibo
    events = _events(41)
    await produce(broker.bootstrap_servers, topic, events)
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(url, tls={"ca_file": str(pki.ca_file)})])
    async with running_gateway(tree):
        await wait_for(lambda: sandbox.total_unique >= len(events), 30, "delivery over TLS")
    assert set(sandbox.unique_ids("default")) == {e["event_id"] for e in events}


async def test_tls_verification_is_on_by_default(
    broker: EmbeddedBroker, topic: str, https_unibo: tuple[UniboSandbox, str]
) -> None:
    """Without the CA the certificate is refused: nothing is sent, the send is retried as `tls`, nothing is lost."""
    sandbox, url = https_unibo
    await produce(broker.bootstrap_servers, topic, _events(42))
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(url)])
    async with running_gateway(tree) as gateway:
        await wait_for(
            lambda: gateway.value("gateway_delivery_retries_total", destination="unibo", reason="tls") >= 2,
            30,
            "TLS failures to be retried",
        )
        assert gateway.value("gateway_destination_up", destination="unibo") == 0
    assert sandbox.total_unique == 0


class ForwardProxy:
    """A minimal HTTP forward proxy that requires Basic auth and records what it forwarded."""

    def __init__(self, username: str, password: str) -> None:
        self.accept(username, password)
        self.forwarded: list[str] = []
        self.refused = 0

    def accept(self, username: str, password: str) -> None:
        """The credentials the proxy accepts from now on."""
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Proxy-Authorization") != self.expected:
            self.refused += 1
            return web.Response(status=407, headers={"Proxy-Authenticate": "Basic"})
        self.forwarded.append(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("proxy-authorization", "host")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, str(request.url), data=await request.read(), headers=headers) as upstream,
        ):
            return web.Response(status=upstream.status, body=await upstream.read())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def test_egress_proxy_with_credentials_carries_the_traffic(broker: EmbeddedBroker, topic: str) -> None:
    """A destination's proxy (with credentials) carries every vendor request; the vendor still gets everything."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"})
    proxy = ForwardProxy("gw", "proxy-pass-123")
    events = _events(43)
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as vendor, SandboxServer(proxy.app()) as proxy_server:
        destination = unibo_destination(
            vendor.url, proxy={"url": proxy_server.url, "username": "gw", "password": "proxy-pass-123"}
        )
        vendor_url = vendor.url
        async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])):
            await wait_for(lambda: sandbox.total_unique >= len(events), 30, "delivery through the proxy")
    assert proxy.forwarded
    assert all(url.startswith(vendor_url) for url in proxy.forwarded)
    assert proxy.refused == 0
    assert set(sandbox.unique_ids("default")) == {e["event_id"] for e in events}


async def test_proxy_refusing_credentials_halts_without_dead_letters(broker: EmbeddedBroker, topic: str) -> None:
    """A 407 from the egress proxy halts the tenant (an infrastructure fault), dead-letters nothing, and delivery
    resumes once the proxy accepts the credentials."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"})
    proxy = ForwardProxy("gw", "right-password")
    events = _events(44)
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as vendor, SandboxServer(proxy.app()) as proxy_server:
        destination = unibo_destination(
            vendor.url, proxy={"url": proxy_server.url, "username": "gw", "password": "wrong-password"}
        )
        async with running_gateway(gateway_config(broker.bootstrap_servers, topic, [destination])) as gateway:
            await wait_for(
                lambda: gateway.value("gateway_tenant_halted", destination="unibo", tenant="default") == 1,
                30,
                "the halt",
            )
            assert proxy.refused >= 1
            assert sandbox.total_unique == 0
            proxy.accept("gw", "wrong-password")  # the proxy operator fixes the account: the probe gets through
            await wait_for(lambda: sandbox.total_unique >= len(events), 30, "delivery after the proxy fix")
            assert gateway.value("gateway_events_dead_lettered_total", destination="unibo", reason="rejected") == 0
    assert set(sandbox.unique_ids("default")) == {e["event_id"] for e in events}
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
