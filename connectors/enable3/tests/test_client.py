"""Unit tests for the Enable3 client: one request per record in order, partial results, 409, 400, Retry-After."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from connectors.enable3 import connector
from connectors.enable3.config import Enable3Credentials
from gateway.config import DestinationConfig
from gateway.connector import ClientContext, VendorRecord
from gateway.http_client import HttpResponse
from gateway.outcomes import FailureKind, Outcome, TransportFailure

TIMEOUT = TransportFailure(FailureKind.TIMEOUT)

KEY = "enable3-unit-key"


class SequenceTransport:
    """Answers requests with a list of (status, body, headers) in turn, recording each request (the edge fake)."""

    def __init__(self, answers: Sequence[tuple[int, bytes, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    async def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        self.requests.append({"method": method, "url": url, "body": body, "headers": dict(headers or {})})
        status, payload, extra = self.answers.pop(0)
        return HttpResponse(status, payload, CIMultiDictProxy(CIMultiDict(extra)), TIMEOUT if status == 0 else None)


def _client(transport: SequenceTransport) -> Any:
    destination = DestinationConfig(name="e3", connector="enable3", base_url="https://e3.invalid")
    context = ClientContext(destination=destination, options=None, settings=None, http=transport)  # type: ignore[arg-type]
    return connector.client(context)


def _records(count: int, route: str = "event") -> list[VendorRecord]:
    return [VendorRecord(route, orjson.dumps({"id": f"e{i}"}), f"p{i % 2}", f"e{i}") for i in range(count)]


async def test_records_go_one_per_request_in_order_with_the_key() -> None:
    """Each record is its own request, in batch order, with X-API-KEY and its route's method and path."""
    transport = SequenceTransport([(201, b"", {})] * 3 + [(200, b"", {})])
    records = [*_records(2), *_records(1, "revenue"), VendorRecord("segment_remove", b"[1]", "p", "s")]
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), records)
    assert result.outcome is Outcome.DELIVERED and result.duplicates == 0
    sent = [(r["method"], r["url"], r["body"]) for r in transport.requests]
    assert sent == [
        ("POST", "https://e3.invalid/api/v1/event", records[0].body),
        ("POST", "https://e3.invalid/api/v1/event", records[1].body),
        ("POST", "https://e3.invalid/api/v1/revenue", records[2].body),
        ("DELETE", "https://e3.invalid/api/v1/segment/users", b"[1]"),
    ]
    assert all(r["headers"]["X-API-KEY"] == KEY for r in transport.requests)


async def test_each_send_carries_its_own_tenants_key() -> None:
    """Headers are built once per credentials object: tenants sending in turn each get their own key, also when a
    tenant's earlier credentials object is gone and a new one holds another key."""
    transport = SequenceTransport([(201, b"", {})] * 4)
    client = _client(transport)
    first, second = Enable3Credentials(api_key="key-one"), Enable3Credentials(api_key="key-two")
    for credentials in (first, second, first):
        await client.send(credentials, _records(1))
    del first, second
    await client.send(Enable3Credentials(api_key="key-three"), _records(1))
    keys = [r["headers"]["X-API-KEY"] for r in transport.requests]
    assert keys == ["key-one", "key-two", "key-one", "key-three"]
    assert transport.requests[0]["headers"]["content-type"] == "application/json"


async def test_409_counts_as_a_delivered_duplicate() -> None:
    """A 409 is Enable3's "duplicate entry": delivered, counted as a duplicate, and the rest still sent."""
    transport = SequenceTransport([(201, b"", {}), (409, b"dup", {}), (201, b"", {})])
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(3))
    assert (result.outcome, result.duplicates, len(transport.requests)) == (Outcome.DELIVERED, 1, 3)


async def test_a_400_names_only_its_record_and_keeps_the_body() -> None:
    """A 400 stops the send: earlier records are delivered, that one is rejected with the vendor's body."""
    transport = SequenceTransport(
        [(409, b"", {}), (201, b"", {}), (400, b'{"message":["value must be a number"]}', {})]
    )
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(5))
    assert result.outcome is Outcome.REJECT
    assert (result.delivered, result.rejected, result.duplicates) == (frozenset({0, 1}), frozenset({2}), 1)
    assert "value must be a number" in result.detail
    assert len(transport.requests) == 3  # nothing after the failure was sent


async def test_404_user_not_found_is_rejected() -> None:
    """404 (user not found) dead-letters the record rather than halting."""
    transport = SequenceTransport([(404, b"User not found", {})])
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(2))
    assert (result.outcome, result.rejected, result.delivered) == (Outcome.REJECT, frozenset({0}), None)


async def test_429_retries_the_rest_with_retry_after() -> None:
    """A 429 mid-batch settles what went before and retries the rest after Retry-After."""
    transport = SequenceTransport([(201, b"", {}), (429, b"", {"Retry-After": "3"})])
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(4))
    assert (result.outcome, result.retry_after, result.delivered) == (Outcome.RETRY, 3.0, frozenset({0}))


async def test_401_and_403_halt_keeping_the_rest() -> None:
    """401 and 403 halt; only the records before them count as delivered."""
    for status in (401, 403):
        transport = SequenceTransport([(201, b"", {}), (201, b"", {}), (status, b"no", {})])
        result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(3))
        assert (result.outcome, result.delivered, result.rejected) == (Outcome.HALT, frozenset({0, 1}), None)


async def test_network_failure_retries_with_its_reason() -> None:
    """No answer (status 0) retries, with the transport's reason as the retry reason."""
    transport = SequenceTransport([(0, b"", {})])
    result = await _client(transport).send(Enable3Credentials(api_key=KEY), _records(1))
    assert (result.outcome, result.reason, result.delivered) == (Outcome.RETRY, "timeout", None)


def _players(*players: str) -> list[VendorRecord]:
    return [VendorRecord("event", orjson.dumps({"id": f"e-{p}"}), p, f"e-{p}") for p in players]


async def test_404s_for_several_players_in_a_row_halt_the_tenant() -> None:
    """404 is "user not found or unauthorized": a run of them over 5 different players, with nothing accepted in
    between, is a wrong base_url or key. The first four records are dead-lettered one by one; the fifth halts the
    tenant (nothing more dead-lettered), with a message naming what to check and no secret in it."""
    transport = SequenceTransport([(404, b"Not Found", {})] * 12)
    client, credentials = _client(transport), Enable3Credentials(api_key=KEY)
    outcomes = []
    for player in ("a", "a", "b", "c", "d"):  # a repeated player counts once
        outcomes.append((await client.send(credentials, _players(player))).outcome)
    assert outcomes == [Outcome.REJECT] * 5
    result = await client.send(credentials, _players("e", "f"))
    assert (result.outcome, result.status, result.delivered, result.rejected) == (Outcome.HALT, 404, None, None)
    assert "base_url" in result.detail and "api_key" in result.detail and KEY not in result.detail
    # The prober's re-send: still 404, still halted; the records stay with the engine.
    assert (await client.send(credentials, _players("e"))).outcome is Outcome.HALT


async def test_an_accepted_request_ends_the_run_and_a_probe_resumes() -> None:
    """A 2xx (or a 409 duplicate) in between ends the run, so unknown players spread among accepted ones only ever
    dead-letter their own record; once halted, the first accepted probe ends the halt."""
    no: tuple[int, bytes, dict[str, str]] = (404, b"", {})
    transport = SequenceTransport([no] * 4 + [(201, b"", {})] + [no] * 4 + [(409, b"", {})] + [no])
    client, credentials = _client(transport), Enable3Credentials(api_key=KEY)
    for player in "abcdXefghYi":
        result = await client.send(credentials, _players(player))
        assert result.outcome is (Outcome.DELIVERED if player in "XY" else Outcome.REJECT), player
    transport.answers = [no] * 4 + [(201, b"", {}), no]
    assert [(await client.send(credentials, _players(p))).outcome for p in "jklm"][-1] is Outcome.HALT
    assert (await client.send(credentials, _players("m"))).outcome is Outcome.DELIVERED  # the probe is accepted
    assert (await client.send(credentials, _players("n"))).outcome is Outcome.REJECT  # a fresh run


async def test_404_runs_are_per_tenant_and_only_for_mission_events() -> None:
    """One tenant's wrong key does not halt another, and a 404 from another endpoint never counts."""
    transport = SequenceTransport([(404, b"", {})] * 20)
    client = _client(transport)
    one, two = Enable3Credentials(api_key="key-one"), Enable3Credentials(api_key="key-two")
    for player in "abcd":
        assert (await client.send(one, _players(player))).outcome is Outcome.REJECT
        assert (await client.send(two, _players(player))).outcome is Outcome.REJECT
        revenue = VendorRecord("revenue", b"{}", player, f"r-{player}")
        assert (await client.send(one, [revenue])).outcome is Outcome.REJECT
    assert (await client.send(one, _players("e"))).outcome is Outcome.HALT
    assert (await client.send(two, _players("e"))).outcome is Outcome.HALT
