"""The generic sandbox fault injector over real HTTP: each fault kind, counts, fractions, paths and its control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devkit.sandbox.faults import FaultInjector, FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox

SHORT = aiohttp.ClientTimeout(total=0.3)


@dataclass
class Bed:
    """A minimal vendor app with the fault injector installed, its URL and a client session."""

    faults: FaultInjector
    url: str
    session: aiohttp.ClientSession
    served: list[str]

    async def call(
        self, path: str = "/vendor/ping", client_timeout: aiohttp.ClientTimeout | None = None
    ) -> aiohttp.ClientResponse:
        """POST to `path` and return the read response (the session's timeout unless `client_timeout` is given)."""
        timeout = client_timeout or self.session.timeout
        async with self.session.post(f"{self.url}{path}", json={"x": 1}, timeout=timeout) as response:
            await response.read()
            return response

    async def control(self, method: str, body: object = None) -> tuple[int, Any]:
        """Call /_sandbox/faults and return (status, JSON body)."""
        async with self.session.request(method, f"{self.url}/_sandbox/faults", json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    """A generic app answering 200 on any /vendor/ path, with faults installed, on a free port."""
    faults, served = FaultInjector(seed=7), []

    async def handler(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    faults.install(app)
    app.router.add_post("/vendor/{tail:.*}", handler)
    async with SandboxServer(app) as server, aiohttp.ClientSession() as session:
        yield Bed(faults, server.url, session, served)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_status_fault_answers_for_count_requests(bed: Bed, status: int) -> None:
    """A status fault answers its status and body for `count` requests without reaching the handler, then stops."""
    bed.faults.add(FaultPlan("status", count=2, status=status, body='{"detail":"boom"}'))
    for _ in range(2):
        response = await bed.call()
        assert (response.status, response.content_type) == (status, "application/json")
    assert (await bed.call()).status == 200
    assert (bed.served, bed.faults.injected["status"]) == (["/vendor/ping"], 2)


async def test_rate_limit_fault_sends_retry_after(bed: Bed) -> None:
    """A rate_limit fault answers 429 with Retry-After in seconds."""
    bed.faults.add(FaultPlan("rate_limit", count=1, retry_after=7))
    response = await bed.call()
    assert (response.status, response.headers["Retry-After"]) == (429, "7")
    assert (await bed.call()).status == 200


@pytest.mark.parametrize("status", [301, 307, 308])
async def test_redirect_fault_answers_a_3xx_with_its_location(bed: Bed, status: int) -> None:
    """A redirect fault answers its 3xx with Location, without reaching the handler."""
    bed.faults.add(FaultPlan("redirect", count=1, status=status, location="http://127.0.0.1:9/trap"))
    async with bed.session.post(f"{bed.url}/vendor/ping", json={}, allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (status, "http://127.0.0.1:9/trap")
    assert (bed.served, bed.faults.injected["redirect"]) == ([], 1)


def test_a_redirect_fault_needs_a_3xx_and_a_status_fault_cannot_have_one() -> None:
    """The control API refuses a redirect without a 3xx, and a 3xx on a status fault."""
    with pytest.raises(ValueError, match="3xx"):
        FaultPlan.from_dict({"kind": "redirect"})
    with pytest.raises(ValueError, match="4xx or 5xx"):
        FaultPlan.from_dict({"kind": "status", "status": 301})
    assert FaultPlan.from_dict({"kind": "redirect", "status": 308, "location": "/x"}).location == "/x"


async def test_hang_fault_makes_the_client_time_out(bed: Bed) -> None:
    """A hang fault never answers, so a client with a short timeout gives up; the next request is served."""
    bed.faults.add(FaultPlan("hang", count=1))
    with pytest.raises(TimeoutError):
        await bed.call(client_timeout=SHORT)
    assert (await bed.call()).status == 200
    assert bed.faults.injected["hang"] == 1


async def test_hang_with_delay_drops_the_connection(bed: Bed) -> None:
    """A hang with a delay drops the connection without an answer once the delay has passed."""
    bed.faults.add(FaultPlan("hang", count=1, delay=0.05))
    with pytest.raises(aiohttp.ClientConnectionError):
        await bed.call()
    assert bed.served == []


async def test_reset_fault_is_a_connection_error(bed: Bed) -> None:
    """A reset fault closes the TCP connection without a response, which the client sees as a connection error."""
    bed.faults.add(FaultPlan("reset", count=1))
    with pytest.raises(aiohttp.ClientConnectionError):
        await bed.call()
    assert (await bed.call()).status == 200
    assert bed.served == ["/vendor/ping"]


async def test_slow_fault_answers_normally_after_the_delay(bed: Bed) -> None:
    """A slow fault still reaches the handler and answers normally."""
    bed.faults.add(FaultPlan("slow", count=1, delay=0.05))
    assert (await bed.call()).status == 200
    assert (bed.served, bed.faults.injected["slow"]) == (["/vendor/ping"], 1)


async def test_fault_without_count_lasts_until_cleared_and_spares_control_api(bed: Bed) -> None:
    """A plan without count hits every vendor request until DELETE clears it; /_sandbox/ is never faulted."""
    status, report = await bed.control("POST", {"kind": "status", "status": 502})
    assert (status, report["active"][0]["remaining"]) == (200, None)
    assert [(await bed.call()).status for _ in range(3)] == [502, 502, 502]
    status, report = await bed.control("DELETE")
    assert (status, report["active"], report["injected"]) == (200, [], {"status": 3})
    assert (await bed.call()).status == 200


async def test_fraction_and_path_prefix_select_requests(bed: Bed) -> None:
    """A fraction hits only some requests and path_prefix limits a plan to matching paths."""
    bed.faults.add(FaultPlan("status", fraction=0.5, path_prefix="/vendor/flaky"))
    statuses = [(await bed.call("/vendor/flaky")).status for _ in range(40)]
    assert 0 < statuses.count(503) < 40
    assert statuses.count(503) == bed.faults.total_injected
    assert (await bed.call("/vendor/other")).status == 200


async def test_header_narrows_a_plan_to_one_tenant(bed: Bed) -> None:
    """A plan with `header` hits only requests carrying that header value (one tenant's key), not the others."""
    bed.faults.add(FaultPlan.from_dict({"kind": "status", "header": "x-api-key: slow-tenant"}))
    url = f"{bed.url}/vendor/ping"
    async with bed.session.post(url, json={}, headers={"x-api-key": "slow-tenant"}) as response:
        assert response.status == 503
    async with bed.session.post(url, json={}, headers={"x-api-key": "fast-tenant"}) as response:
        assert response.status == 200
    assert (await bed.call()).status == 200
    with pytest.raises(ValueError, match="Name: value"):
        FaultPlan("status", header="no-colon")


async def test_control_api_accepts_a_list_and_reports_remaining(bed: Bed) -> None:
    """POST takes a list of plans (the alias kind "429" included) and GET reports what is left of each."""
    plans = [{"kind": "429", "count": 2, "retry_after": 3}, {"kind": "slow", "delay": 0.01, "count": 1}]
    assert (await bed.control("POST", plans))[0] == 200
    assert (await bed.call()).status == 429
    status, report = await bed.control("GET")
    assert status == 200
    assert [(a["kind"], a["remaining"], a["injected"]) for a in report["active"]] == [
        ("rate_limit", 1, 1),
        ("slow", 1, 0),
    ]


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param({"kind": "explode"}, id="unknown kind"),
        pytest.param({"kind": "status", "colour": "red"}, id="unknown field"),
        pytest.param({"kind": "status", "count": 0}, id="zero count"),
        pytest.param({"kind": "status", "fraction": 2}, id="fraction above 1"),
        pytest.param({"kind": "status", "status": True}, id="bool status"),
        pytest.param({"kind": "status", "status": 200}, id="success status"),
        pytest.param({"count": 1}, id="no kind"),
        pytest.param("status", id="not an object"),
    ],
)
async def test_control_api_rejects_invalid_plans(bed: Bed, plan: object) -> None:
    """An invalid plan gets 400 and arms nothing."""
    status, body = await bed.control("POST", plan)
    assert status == 400
    assert isinstance(body["detail"], str)
    assert bed.faults.report()["active"] == []


async def test_faults_apply_to_the_unibo_sandbox_before_its_checks() -> None:
    """In the Unibo sandbox a 503 fault answers before auth and stores nothing; a slow batch is stored normally."""
    sandbox = UniboSandbox({"key-a": "brand-a"})
    sandbox.faults.add(FaultPlan("status", count=1))
    sandbox.faults.add(FaultPlan("slow", count=1, delay=0.01))
    item = {"event": "login", "data": {"unique_id": "u1", "timestamp": "2025-01-15T12:00:00Z", "player_id": "p1"}}
    async with SandboxServer(sandbox.app()) as server, aiohttp.ClientSession() as session:
        url, headers = f"{server.url}/api/v1/events", {"x-api-key": "key-a"}
        for expected in (503, 204):
            async with session.post(url, json={"items": [item]}, headers=headers) as response:
                assert response.status == expected
    assert (sandbox.unique_ids("brand-a"), sandbox.stats.requests, sandbox.report()["faults_injected"]) == (
        ["u1"],
        1,
        2,
    )
