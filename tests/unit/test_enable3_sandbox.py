"""The Enable3 sandbox checks what Enable3 documents: the key, fields, types, timestamp format and revenue body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer

KEY = "e3-sandbox-key"
EVENT = {
    "id": "e1",
    "userId": "u1",
    "eventId": "deposit",
    "eventTags": [],
    "value": 10.5,
    "createdAt": "2026-01-01 10:00:00",
}


@dataclass
class Bed:
    """A served sandbox and a client session."""

    sandbox: Enable3Sandbox
    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, key: str | None = KEY) -> tuple[int, Any]:
        headers = {"X-API-KEY": key} if key else {}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as response:
            text = await response.text()
            return response.status, text


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    """A sandbox accepting KEY for tenant `default`."""
    sandbox = Enable3Sandbox({KEY: "default"})
    async with SandboxServer(sandbox.app()) as server, aiohttp.ClientSession() as session:
        yield Bed(sandbox, server.url, session)


async def test_valid_event_is_stored_in_per_user_arrival_order(bed: Bed) -> None:
    """201 for a valid event; the sandbox keeps each user's ids in arrival order."""
    for event_id, user in (("a", "u1"), ("b", "u2"), ("c", "u1")):
        assert (await bed.call("POST", "/api/v1/event", {**EVENT, "id": event_id, "userId": user}))[0] == 201
    assert bed.sandbox.user_order("default", "u1") == ["a", "c"]
    assert bed.sandbox.event_ids("default") == ["a", "b", "c"]


@pytest.mark.parametrize("key", [None, "wrong"], ids=["missing", "wrong"])
async def test_missing_or_wrong_key_is_401(bed: Bed, key: str | None) -> None:
    """No X-API-KEY or an unknown one gets 401 and stores nothing."""
    assert (await bed.call("POST", "/api/v1/event", EVENT, key=key))[0] == 401
    assert bed.sandbox.total_events == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"createdAt": "2026-01-01T10:00:00Z"}, "createdAt"),
        ({"createdAt": "2026-02-30 10:00:00"}, "createdAt"),
        ({"value": "10"}, "value must be a number"),
        ({"value": True}, "value must be a number"),
        ({"userId": ""}, "userId"),
        ({"eventTags": "daily"}, "eventTags"),
        ({"extra": 1}, "not a field"),
        ({"id": None}, "id must be"),
    ],
    ids=["iso-timestamp", "impossible-date", "string-value", "bool-value", "empty-user", "tags-string", "extra", "id"],
)
async def test_invalid_events_are_400_with_the_reason(bed: Bed, change: dict[str, Any], message: str) -> None:
    """Fields, types and the timestamp format are checked; the 400 body says what is wrong."""
    status, body = await bed.call("POST", "/api/v1/event", {**EVENT, **change})
    assert status == 400 and message in body
    assert bed.sandbox.total_events == 0


async def test_missing_required_field_is_400(bed: Bed) -> None:
    """Each required field of AppEventDto is required."""
    for field in ("id", "userId", "eventId", "value", "createdAt"):
        body = {key: value for key, value in EVENT.items() if key != field}
        status, text = await bed.call("POST", "/api/v1/event", body)
        assert status == 400 and f"{field} is required" in text


async def test_duplicates_are_counted_and_409_when_asked(bed: Bed) -> None:
    """An id seen before is stored once; with conflicts on it gets 409 "duplicate entry"."""
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 201
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 201
    bed.sandbox.conflict_on_duplicate = True
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 409
    assert bed.sandbox.tenant("default").duplicates == 2 and bed.sandbox.total_events == 1


async def test_revenue_body_is_checked(bed: Bed) -> None:
    """Revenue needs requestId, a numeric revenue and a `YYYY-MM-DD HH:MM:SS` date; valid revenue is stored."""
    good = {"requestId": "r1", "revenue": 12.5, "date": "2026-01-01 00:00:00"}
    assert (await bed.call("POST", "/api/v1/revenue", good))[0] == 204
    assert (await bed.call("POST", "/api/v1/revenue", {**good, "revenue": "12.5"}))[0] == 400
    assert (await bed.call("POST", "/api/v1/revenue", {**good, "date": "2026-01-01"}))[0] == 400
    assert (await bed.call("POST", "/api/v1/revenue", {"requestId": "r2", "date": "2026-01-01 00:00:00"}))[0] == 400
    assert (await bed.call("POST", "/api/v1/revenue", {**good, "extra": 1}))[0] == 400
    assert (await bed.call("POST", "/api/v1/revenue", {}))[0] == 400
    assert (await bed.call("POST", "/api/v1/revenue", "12.5"))[0] == 400
    assert bed.sandbox.tenant("default").revenue == {"r1": 12.5}


async def test_a_revenue_body_of_another_shape_is_recorded_as_it_is(bed: Bed) -> None:
    """Enable3 documents no revenue body, so a custom template's body (any non-empty object or array) is accepted
    and recorded unchanged."""
    custom = {"externalId": "r9", "amount": {"value": 3.5, "currency": "USDT"}}
    assert (await bed.call("POST", "/api/v1/revenue", custom))[0] == 204
    assert (await bed.call("POST", "/api/v1/revenue", [custom]))[0] == 204
    assert bed.sandbox.tenant("default").revenue_bodies == [custom, [custom]]
    assert bed.sandbox.tenant("default").revenue == {}


async def test_segments_take_a_non_empty_array(bed: Bed) -> None:
    """Assign and remove take a JSON array (all Enable3 documents); the bodies are recorded in order."""
    assert (await bed.call("POST", "/api/v1/segment/users/", [{"userId": "u1", "segment": "vip"}]))[0] == 200
    assert (await bed.call("DELETE", "/api/v1/segment/users", [{"userId": "u1", "segment": "vip"}]))[0] == 200
    assert (await bed.call("POST", "/api/v1/segment/users/", {"userId": "u1"}))[0] == 400
    assert [action for action, _ in bed.sandbox.tenant("default").segments] == ["add", "remove"]


async def test_fail_ids_answer_their_status(bed: Bed) -> None:
    """Ids told to fail get the chosen 4xx and are not stored."""
    bed.sandbox.set_fail_ids(["e1"], 404)
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 404
    assert bed.sandbox.total_events == 0 and bed.sandbox.stats.fail_id_hits == 1


async def test_widget_token_and_balance(bed: Bed) -> None:
    """The user endpoints need the key and answer a URL with a token, a JWT, and a balance."""
    status, body = await bed.call("GET", "/api/v1/integration/user/u1/widget?lang=en")
    assert status == 200 and bed.sandbox.issued_tokens[-1] in body and "lang=en" in body
    status, body = await bed.call("GET", "/api/v1/integration/user/u1/token")
    assert status == 200 and bed.sandbox.issued_tokens[-1] in body
    status, body = await bed.call("GET", "/api/v1/integration/user/u1/balance")
    assert status == 200 and '"userExists":false' in body
    assert (await bed.call("GET", "/api/v1/integration/user/u1/token", key=None))[0] == 401


async def test_faults_are_the_unibo_ones(bed: Bed) -> None:
    """The shared fault injector applies: a 503 plan answers 503 once, then the event is stored."""
    bed.sandbox.faults.add(FaultPlan(kind="status", status=503, count=1))
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 503
    assert (await bed.call("POST", "/api/v1/event", EVENT))[0] == 201
    async with bed.session.post(f"{bed.url}/_sandbox/enable3/conflicts", json={"enabled": True}) as response:
        assert (await response.json())["conflict_on_duplicate"] is True
