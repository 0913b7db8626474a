"""UserWise client: per-player request planning, signing on the wire, and how per-request answers combine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from connectors.userwise import connector
from connectors.userwise.client import UserWiseClient
from connectors.userwise.config import UserWiseCredentials, UserWiseOptions
from connectors.userwise.requests import plan
from connectors.userwise.signing import request_hash
from gateway import config as config_module
from gateway.connector import ClientContext, VendorRecord
from gateway.http_client import HttpResponse
from gateway.outcomes import FailureKind, Outcome, TransportFailure

CREDENTIALS = UserWiseCredentials.model_validate({"api_key": "app-key", "secret_key": "company-secret"})
Answer = Callable[[str, bytes], tuple[int, dict[str, str]]]


class AnsweringTransport:
    """The edge fake: answers each request by a function of its URL and body, records them, can run them slowly."""

    def __init__(self, answer: Answer, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def request(
        self, method: str, url: str | URL, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        url = str(url)  # the client hands over yarl URLs in wire form
        self.requests.append({"method": method, "url": url, "body": body or b"", "headers": dict(headers or {})})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        status, response_headers = self.answer(url, body or b"")
        error = TransportFailure(FailureKind.CONNECTION, "ServerDisconnectedError") if status == 0 else None
        return HttpResponse(status, b'{"error":"x"}', CIMultiDictProxy(CIMultiDict(response_headers)), error)


def _client(transport: AnsweringTransport, concurrency: int = 8) -> UserWiseClient:
    destination = config_module.DestinationConfig(
        name="uw", connector="userwise", base_url="https://api.userwise.io", concurrency=concurrency
    )
    context = ClientContext(destination, UserWiseOptions(), None, transport)  # type: ignore[arg-type]
    return UserWiseClient(context)


def _record(player: str, route: str, uid: str) -> VendorRecord:
    if route == "attributes":
        body = orjson.dumps([{"name": uid, "value": 1, "data_type": "integer"}])
    elif route == "events":
        body = orjson.dumps({"event_id": "bet", "attributes": [{"name": "event_uid", "value": uid}]})
    else:
        body = orjson.dumps({"revenue": 1.0, "transaction_id": uid})
    return VendorRecord(route=route, body=body, key=player, record_id=uid)


def _ok(url: str, body: bytes) -> tuple[int, dict[str, str]]:
    return 204, {}


def test_plan_groups_by_player_and_splits_runs_by_route() -> None:
    """One player's consecutive same-route records share a request; a route change starts the next one."""
    records = [
        _record("a", "events", "1"),
        _record("b", "events", "2"),
        _record("a", "events", "3"),
        _record("a", "revenue_events", "4"),
        _record("a", "events", "5"),
        _record("b", "attributes", "6"),
    ]
    planned = plan(records, max_items=500)
    assert [[(r.player, r.route, r.indexes) for r in player] for player in planned] == [
        [("a", "events", (0, 2)), ("a", "revenue_events", (3,)), ("a", "events", (4,))],
        [("b", "events", (1,)), ("b", "attributes", (5,))],
    ]
    assert orjson.loads(planned[0][0].body)["events"][1]["attributes"][0]["value"] == "3"


def test_plan_caps_items_per_request() -> None:
    """A long run is cut at max_items."""
    records = [_record("a", "events", str(i)) for i in range(5)]
    assert [r.indexes for r in plan(records, max_items=2)[0]] == [(0, 1), (2, 3), (4,)]


def test_coalesced_attributes_keep_each_name_once_with_its_latest_value() -> None:
    """Two profile updates in one request: each attribute appears once, with the later value."""
    first = VendorRecord(
        "attributes", orjson.dumps([{"name": "country", "value": "DE"}, {"name": "x", "value": 1}]), "a", "1"
    )
    second = VendorRecord("attributes", orjson.dumps([{"name": "country", "value": "FI"}]), "a", "2")
    body = orjson.loads(plan([first, second], 500)[0][0].body)
    assert body == {"attributes": [{"name": "x", "value": 1}, {"name": "country", "value": "FI"}]}


async def test_requests_are_signed_over_the_exact_url_and_bytes_sent() -> None:
    """Each request's enc is sha3(url-without-enc + body sent + secret); the key header is base64."""
    transport = AnsweringTransport(_ok)
    records = [_record("jos\u00e9 / 7", "events", "1"), _record("p2", "revenue_events", "2")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is Outcome.DELIVERED
    assert len(transport.requests) == 2
    for sent in transport.requests:
        url, _, enc = sent["url"].partition("?enc=")
        assert enc == request_hash(url, sent["body"], "company-secret")
        assert sent["headers"]["X-Api-Key"] == "YXBwLWtleQ=="
    urls = sorted(sent["url"].split("?")[0] for sent in transport.requests)
    assert urls == [
        "https://api.userwise.io/api/v1/appuser/jos%C3%A9%20%2F%207/events",
        "https://api.userwise.io/api/v1/appuser/p2/revenue_events",
    ]


async def test_a_retry_resends_only_requests_without_a_2xx() -> None:
    """Player b's 503 makes a RETRY whose `delivered` names player a's records, never to be sent again."""
    transport = AnsweringTransport(lambda url, body: (503, {"Retry-After": "3"}) if "/b/" in url else (204, {}))
    records = [_record("a", "events", "1"), _record("b", "events", "2"), _record("a", "events", "3")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is Outcome.RETRY
    assert result.delivered == frozenset({0, 2})
    assert result.retry_after == 3.0


async def test_a_player_stops_at_its_first_failed_request_so_order_holds() -> None:
    """After a player's request fails, its later requests are not sent in this attempt."""
    transport = AnsweringTransport(lambda url, body: (500, {}) if "/revenue_events?" in url else (204, {}))

    records = [_record("a", "events", "1"), _record("a", "revenue_events", "2"), _record("a", "attributes", "3")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is Outcome.RETRY
    assert result.delivered == frozenset({0})
    assert [r["url"].split("?")[0].rsplit("/", 1)[1] for r in transport.requests] == ["events", "revenue_events"]


@pytest.mark.parametrize("status", [400, 422])
async def test_a_rejected_single_record_request_names_that_record(status: int) -> None:
    """400/422 on a one-record request rejects exactly that record; the other players' records are delivered."""
    transport = AnsweringTransport(lambda url, body: (status, {}) if "/bad/" in url else (204, {}))
    records = [_record("a", "events", "1"), _record("bad", "events", "2"), _record("c", "attributes", "3")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is Outcome.REJECT
    assert result.rejected == frozenset({1})
    assert result.delivered == frozenset({0, 2})
    assert result.status == status


async def test_a_rejected_multi_record_request_leaves_the_split_to_the_engine() -> None:
    """A refused request of several records does not say which is bad: rejected is None, so the engine splits."""
    transport = AnsweringTransport(lambda url, body: (422, {}) if b'"2"' in body else (204, {}))
    records = [_record("a", "events", "1"), _record("a", "events", "2"), _record("b", "events", "3")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is Outcome.REJECT
    assert result.rejected is None
    assert result.delivered == frozenset({2})


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        ({"a": 401, "b": 503, "c": 422}, Outcome.HALT),
        ({"a": 204, "b": 503, "c": 422}, Outcome.RETRY),
        ({"a": 204, "b": 0, "c": 204}, Outcome.RETRY),
        ({"a": 403, "b": 204, "c": 204}, Outcome.HALT),
        ({"a": 204, "b": 204, "c": 422}, Outcome.REJECT),
        ({"a": 204, "b": 204, "c": 204}, Outcome.DELIVERED),
    ],
    ids=["halt-wins", "retry-over-reject", "network", "forbidden", "reject", "all-ok"],
)
async def test_mixed_player_outcomes_combine_most_severe_first(answers: dict[str, int], outcome: Outcome) -> None:
    """HALT > RETRY > REJECT > DELIVERED across players of one batch."""
    transport = AnsweringTransport(lambda url, body: (answers[url.split("/appuser/")[1].split("/")[0]], {}))
    records = [_record(player, "events", player) for player in ("a", "b", "c")]
    result = await _client(transport, concurrency=1).send(CREDENTIALS, records)
    assert result.outcome is outcome


async def test_players_go_in_parallel_within_the_bound() -> None:
    """Requests of different players overlap, but never more than the destination's lanes (here 4)."""
    transport = AnsweringTransport(_ok, delay=0.02)
    records = [_record(f"p{i}", "events", str(i)) for i in range(40)]
    result = await _client(transport, concurrency=4).send(CREDENTIALS, records)
    assert result.outcome is Outcome.DELIVERED
    assert 1 < transport.max_in_flight <= 4


def test_connector_is_registered() -> None:
    """The registry finds the connector under `userwise`."""
    from gateway import registry  # noqa: PLC0415

    assert registry.get("userwise") is connector


async def test_an_echoed_base64_key_never_reaches_a_dead_letter() -> None:
    """The X-Api-Key value (base64 of the key, as good as the key) is scrubbed from an echoing vendor's error text."""
    from types import SimpleNamespace  # noqa: PLC0415

    from gateway.dlq import dead_letter_headers  # noqa: PLC0415

    credentials = UserWiseCredentials.model_validate({"api_key": "echo-app-key-789", "secret_key": "s3cret-value"})
    encoded = "ZWNoby1hcHAta2V5LTc4OQ=="

    def echo(url: str, body: bytes) -> tuple[int, dict[str, str]]:
        return 400, {}

    transport = AnsweringTransport(echo)
    client = _client(transport)
    result = await client.send(credentials, [_record("a", "events", "1")])
    assert transport.requests[0]["headers"]["X-Api-Key"] == encoded
    message = SimpleNamespace(topic="t", partition=0, offset=1, key=None, value=b"{}", headers=[])
    detail = f"{result.detail} echoed header: {encoded}"
    headers = dict(dead_letter_headers(message, "uw", "rejected", detail, result.status))
    assert encoded.encode() not in headers["gateway-error"]


async def test_a_request_that_raises_keeps_the_other_players_deliveries() -> None:
    """A bug on one player's request is a RETRY for that player only: the others' 2xx answers stay delivered."""

    def answer(url: str, body: bytes) -> tuple[int, dict[str, str]]:
        if "/b/" in url:
            raise RuntimeError("a bug while sending player b")
        return 204, {}

    records = [_record("a", "events", "1"), _record("b", "events", "2"), _record("c", "events", "3")]
    result = await _client(AnsweringTransport(answer, delay=0.01)).send(CREDENTIALS, records)
    assert result.outcome is Outcome.RETRY and result.reason == "client_error"
    assert result.delivered == frozenset({0, 2})


@pytest.mark.parametrize(
    ("second", "outcome"), [(401, Outcome.HALT), (503, Outcome.RETRY), (422, Outcome.REJECT), (None, Outcome.RETRY)]
)
async def test_one_players_requests_stop_at_the_first_that_fails(second: int | None, outcome: Outcome) -> None:
    """The engine's per-player send (one player, three requests: events, attributes, events): a failed second request
    (refused, transient, rejected, or a bug in the client) leaves the third unsent and the first delivered."""

    def answer(url: str, body: bytes) -> tuple[int, dict[str, str]]:
        if "/attributes" in url:
            if second is None:
                raise RuntimeError("a bug while sending the attributes")
            return second, {}
        return 204, {}

    transport = AnsweringTransport(answer)
    records = [_record("a", "events", "1"), _record("a", "attributes", "2"), _record("a", "events", "3")]
    result = await _client(transport).send(CREDENTIALS, records)
    assert result.outcome is outcome
    assert result.delivered == frozenset({0})
    assert [sent["url"].split("/a/")[1].split("?")[0] for sent in transport.requests] == ["events", "attributes"]
