"""A vendor answering 301, 307 or 308: never followed, the tenant halts naming the Location, and nothing is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.faults import FaultInjector, FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import UNIBO_KEY
from tests.integration.enable3_support import ENABLE3_KEY, enable3_destination, mission_ids
from tests.integration.harness import (
    committed,
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    unibo_destination,
    wait_for,
)
from tests.integration.userwise_support import (
    USERWISE_KEY,
    USERWISE_SECRET,
    expected_at_userwise,
    userwise_destination,
)

STATUSES = (301, 307, 308)


@dataclass
class Vendor:
    """One push vendor's sandbox, how to configure it, what it should hold, and what it holds."""

    name: str
    key: str
    app: Callable[[], web.Application]
    faults: FaultInjector
    destination: Callable[[str], dict[str, Any]]
    expected: Callable[[list[dict[str, Any]]], set[str]]
    stored: Callable[[], set[str]]
    duplicates: Callable[[], int]


def _unibo() -> Vendor:
    sandbox = UniboSandbox({UNIBO_KEY: "default"})
    return Vendor(
        "unibo",
        UNIBO_KEY,
        sandbox.app,
        sandbox.faults,
        lambda url: unibo_destination(url, batch={"max_events": 50, "linger_ms": 20}),
        lambda events: {e["event_id"] for e in events if unibo_takes(e)},
        lambda: set(sandbox.unique_ids("default")),
        lambda: sandbox.tenant("default").duplicates,
    )


def _enable3() -> Vendor:
    sandbox = Enable3Sandbox({ENABLE3_KEY: "default"})
    return Vendor(
        "enable3",
        ENABLE3_KEY,
        sandbox.app,
        sandbox.faults,
        lambda url: enable3_destination(url, concurrency=4),
        lambda events: set(mission_ids(events)),
        lambda: set(sandbox.event_ids("default")),
        lambda: sandbox.tenant("default").duplicates,
    )


def _userwise() -> Vendor:
    sandbox = UserWiseSandbox({USERWISE_KEY: "default"}, USERWISE_SECRET)
    return Vendor(
        "userwise",
        USERWISE_KEY,
        sandbox.app,
        sandbox.faults,
        lambda url: userwise_destination(url, batch={"max_events": 50, "linger_ms": 20}),
        lambda events: expected_at_userwise(events).event_uids,
        lambda: set(sandbox.app_log("default").event_uids),
        lambda: sandbox.app_log("default").duplicates,
    )


@pytest.fixture
async def trap() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that records every request it gets: where the redirects point."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        return web.Response(text="stored (not really)")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with SandboxServer(app) as server:
        yield server.url, seen


@pytest.mark.parametrize("make", [_unibo, _enable3, _userwise], ids=["unibo", "enable3", "userwise"])
async def test_redirects_halt_the_tenant_deliver_nothing_elsewhere_and_lose_nothing(
    broker: EmbeddedBroker,
    topic: str,
    trap: tuple[str, list[str]],
    make: Callable[[], Vendor],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """301, then 307, then 308 from the vendor: the tenant halts (no retry storm, no dead letter), the redirect
    target gets no request, the log names the Location but never the key; once the vendor answers again, every
    event is delivered once."""
    vendor = make()
    trap_url, seen = trap
    events = list(Traffic(seed=11, players=30, prefix=f"redir-{vendor.name}").stream(300))
    expected = vendor.expected(events)
    vendor.faults.add(FaultPlan("redirect", status=301, location=f"{trap_url}/moved/here?sig=abc"))
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(vendor.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [vendor.destination(server.url)])
        async with running_gateway(tree) as gateway:

            def halted() -> bool:
                return gateway.value("gateway_tenant_halted", destination=vendor.name, tenant="default") == 1

            await wait_for(halted, 30, "the tenant to halt on the redirect")
            for status in STATUSES[1:]:
                vendor.faults.clear()
                vendor.faults.add(FaultPlan("redirect", status=status, location=f"{trap_url}/moved/{status}"))
                await wait_for(lambda: vendor.faults.report()["active"][0]["injected"] >= 2, 10, f"{status} probes")
                assert halted()
            assert vendor.stored() == set()
            vendor.faults.clear()
            await wait_for(
                lambda: (
                    vendor.stored() >= expected
                    and gateway.value("gateway_in_flight_events", destination=vendor.name) == 0
                ),
                60,
                "delivery once the vendor answers",
            )
            assert not halted()
    assert seen == []
    assert vendor.stored() == expected
    assert vendor.duplicates() == 0
    assert await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=1) == []
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.{vendor.name}", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
    # structlog writes to stdout, or through logging when an earlier test of the session routed it there
    output = capsys.readouterr().out + caplog.text
    assert f"{trap_url}/moved/here" in output
    assert "sig=abc" not in output
    assert vendor.key not in output
