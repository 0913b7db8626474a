"""The UserWise sandbox over real HTTP: the connector's real client signs what the sandbox verifies, and its checks."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from connectors.userwise import connector
from connectors.userwise.client import UserWiseClient
from connectors.userwise.config import UserWiseCredentials
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.userwise.sandbox import UserWiseSandbox
from gateway import config as config_module
from gateway.connector import ClientContext, VendorRecord
from gateway.events import decode
from gateway.http_client import HttpTransport
from gateway.metrics import DestinationMetrics, Metrics
from gateway.outcomes import Outcome

KEY, SECRET = "unit-app-key", "unit-company-secret"
CREDENTIALS = UserWiseCredentials.model_validate({"api_key": KEY, "secret_key": SECRET})


@dataclass
class Bed:
    """A served sandbox and the connector's client over a real HttpTransport."""

    sandbox: UserWiseSandbox
    url: str
    client: UserWiseClient
    transport: HttpTransport


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    """A UserWise sandbox on a free port and a client pointed at it."""
    sandbox = UserWiseSandbox({KEY: "default"}, SECRET, keep_payloads=True)
    async with SandboxServer(sandbox.app()) as server:
        destination = config_module.DestinationConfig(name="uw", connector="userwise", base_url=server.url)
        metrics = DestinationMetrics(Metrics(CollectorRegistry()), "uw")
        transport = HttpTransport(destination, metrics, pool_size=4)
        options = connector.options_model.model_validate({})
        client = UserWiseClient(ClientContext(destination, options, None, transport))
        try:
            yield Bed(sandbox, server.url, client, transport)
        finally:
            await transport.close()


def _records(player: str) -> list[VendorRecord]:
    options = connector.options_model.model_validate({})
    events = [
        {"event_id": f"{player}-lg", "type": "login", "occurred_at": "2026-01-01T00:00:00Z", "player_id": player},
        {"event_id": f"{player}-dp", "type": "deposit", "occurred_at": "2026-01-01T00:00:01Z", "player_id": player,
         "transaction_id": f"tx-{player}", "amount": "10", "currency": "EUR"},
    ]  # fmt: skip
    return [record for event in events for record in connector.map(decode(orjson.dumps(event)), options)]


@pytest.mark.parametrize(
    "player", ["p-1", "with space", "a/b", "jos\u00e9", "\u73a9\u5bb6", "50%", "it's(1)!", "q?x#y&z=1"]
)
async def test_client_signs_what_the_sandbox_verifies(bed: Bed, player: str) -> None:
    """Every endpoint accepts the client's signature over the encoded URL; records land under the decoded player."""
    result = await bed.client.send(CREDENTIALS, _records(player))
    assert result.outcome is Outcome.DELIVERED, result
    log = bed.sandbox.app_log("default")
    assert log.timeline[player] == [
        ("events", f"{player}-lg"),
        ("attributes", "last_login"),
        ("revenue_events", f"tx-{player}"),
        ("events", f"{player}-dp"),
    ]
    assert bed.sandbox.stats.hash_failures == 0


@pytest.mark.parametrize(
    ("credentials", "counter"),
    [
        ({"api_key": "wrong-key", "secret_key": SECRET}, "key_failures"),
        ({"api_key": KEY, "secret_key": "wrong-secret"}, "hash_failures"),
    ],
    ids=["key", "secret"],
)
async def test_wrong_key_or_secret_is_401_and_halts(bed: Bed, credentials: dict[str, str], counter: str) -> None:
    """A wrong key or a hash made with the wrong secret gets 401, which the client turns into HALT."""
    result = await bed.client.send(UserWiseCredentials.model_validate(credentials), _records("p"))
    assert result.outcome is Outcome.HALT
    assert result.status == 401
    assert getattr(bed.sandbox.stats, counter) >= 1
    assert bed.sandbox.total_events == 0


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.read()


def _signed(url: str, body: bytes, secret: str = SECRET) -> str:
    return f"{url}?enc={hashlib.sha3_256(url.encode() + body + secret.encode()).hexdigest()}"


async def test_the_hash_covers_the_exact_body_bytes(bed: Bed) -> None:
    """The same JSON re-serialized with other whitespace than what was hashed is refused."""
    url = f"{bed.url}/api/v1/appuser/p/events"
    hashed = b'{"events":[{"event_id":"x"}]}'
    headers = {"X-Api-Key": base64.b64encode(KEY.encode()).decode()}
    assert (await _post(_signed(url, hashed), hashed, headers))[0] == 204
    assert (await _post(_signed(url, hashed), b'{"events": [{"event_id": "x"}]}', headers))[0] == 401


async def test_key_with_a_trailing_newline_is_refused(bed: Bed) -> None:
    """base64 of the key plus a newline (the `echo | base64` mistake) is not the key."""
    url = f"{bed.url}/api/v1/appuser/p/events"
    body = b'{"events":[{"event_id":"x"}]}'
    headers = {"X-Api-Key": base64.b64encode(KEY.encode() + b"\n").decode()}
    assert (await _post(_signed(url, body), body, headers))[0] == 401
    assert bed.sandbox.stats.key_failures == 1


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("events", {"events": []}),
        ("events", {"events": [{"attributes": []}]}),
        (
            "events",
            {"events": [{"event_id": "x", "attributes": [{"name": "n", "value": "t", "data_type": "integer"}]}]},
        ),
        ("events", {"items": [{"event_id": "x"}]}),
        ("revenue_events", {"revenue_events": [{"transaction_id": "t"}]}),
        ("revenue_events", {"revenue_events": [{"revenue": "1.0"}]}),
        ("attributes", {"attributes": [{"name": "n"}]}),
        ("attributes", {"attributes": [{"name": "d", "value": "2026-01-01 00:00", "data_type": "datetime"}]}),
    ],
    ids=[
        "empty",
        "no-event-id",
        "type-mismatch",
        "wrong-key",
        "no-revenue",
        "revenue-text",
        "no-value",
        "bad-datetime",
    ],
)
async def test_invalid_bodies_get_422(bed: Bed, endpoint: str, body: dict[str, object]) -> None:
    """Each documented requirement of the three bodies is enforced with a 422 naming the path."""
    url = f"{bed.url}/api/v1/appuser/p/{endpoint}"
    raw = orjson.dumps(body)
    status, answer = await _post(_signed(url, raw), raw, {"X-Api-Key": base64.b64encode(KEY.encode()).decode()})
    assert status == 422
    assert orjson.loads(answer)["errors"]
    assert bed.sandbox.stats.rejected == 1


async def test_fail_uids_reject_the_request_holding_them(bed: Bed) -> None:
    """A request holding a fail_uid gets 422; the client names that one-record request's record as rejected."""
    bed.sandbox.set_fail_uids({"tx-p"})
    result = await bed.client.send(CREDENTIALS, _records("p"))
    assert result.outcome is Outcome.REJECT
    assert result.rejected == frozenset({2})
    assert result.delivered == frozenset({0, 1})


async def test_control_api_reports_and_resets(bed: Bed) -> None:
    """The control API reports a player's timeline and attributes, changes the secret, and resets."""
    await bed.client.send(CREDENTIALS, _records("p"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bed.url}/_sandbox/userwise/received?ids=1&player=p") as response:
            report = await response.json()
        assert report["apps"]["default"]["event_uids"] == ["p-lg", "p-dp"]
        assert report["apps"]["default"]["transaction_ids"] == ["tx-p"]
        assert report["apps"]["default"]["attributes"] == {"last_login": "2026-01-01T00:00:00Z"}
        async with session.post(f"{bed.url}/_sandbox/userwise/secret", json={"secret": "rotated"}) as response:
            assert response.status == 200
        assert (await bed.client.send(CREDENTIALS, _records("q"))).outcome is Outcome.HALT
        async with session.post(f"{bed.url}/_sandbox/userwise/reset") as response:
            assert (await response.json())["events_total"] == 0
    assert (await bed.client.send(CREDENTIALS, _records("q"))).outcome is Outcome.DELIVERED
