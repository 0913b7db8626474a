"""The Unibo sandbox over real HTTP: auth, item validation, storage, Unibo-specific faults and the control API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from devkit.sandbox.registry import SANDBOXES
from devkit.sandbox.server import SandboxServer, Served, run_sandbox_forever
from devkit.sandbox.unibo.sandbox import UniboSandbox

KEYS = {"key-a": "brand-a", "key-b": "brand-b"}
TS = "2025-01-15T12:00:00Z"
Item = dict[str, Any]


def six_items(prefix: str = "u") -> list[Item]:
    """One valid item of each Unibo event type, with unique_ids `<prefix>1` to `<prefix>6`."""
    player = {"player_id": "p1"}
    money = {**player, "currency": "EUR", "method": "bank"}
    data: list[tuple[str, dict[str, Any]]] = [
        ("gameround", {**player, "game_id": "g1", "round_id": "r1", "amount": 2.5, "currency": "EUR"}),
        ("deposit", {**money, "amount": 50, "currency": "USD", "amount_eur": 46.2}),
        ("withdraw", {**money, "amount": 0, "currency": "XOF"}),
        ("player", {**player, "username": "neo", "registration_date": TS, "country": "DE", "currency": "EUR"}),
        ("game", {"game_id": "g1", "name": "Book", "provider": "pv", "categories": ["slots"], "features": None}),
        ("login", player),
    ]
    items: list[Item] = [
        {"event": e, "data": {"unique_id": f"{prefix}{n}", "timestamp": TS, **d}} for n, (e, d) in enumerate(data, 1)
    ]
    items[0]["data"] |= {"is_win": False, "is_bonus": False}
    items[1]["data"]["timestamp"] = "2025-01-15T12:00:00.123456+00:00"
    items[3]["data"] |= {"gender": "F", "affiliate": None, "operator": "op", "tags": ["vip"]}
    items[3]["data"] |= {"consent_email": True, "is_blocked": False}
    items[4]["data"] |= {"themes": [], "device": "mobile", "has_freespins": "yes"}
    return items


@dataclass
class Bed:
    """A running sandbox, its base URL and a client session."""

    sandbox: UniboSandbox
    url: str
    session: aiohttp.ClientSession

    async def post(self, body: object, key: str | None = "key-a") -> tuple[int, Any]:
        """POST a batch and return (status, parsed JSON body or None)."""
        headers = {"x-api-key": key} if key is not None else {}
        async with self.session.post(f"{self.url}/api/v1/events", json=body, headers=headers) as response:
            raw = await response.read()
            return response.status, (await response.json() if raw else None)

    async def control(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Call the control API and return (status, JSON body)."""
        async with self.session.request(method, f"{self.url}/_sandbox/{path}", json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    """A fresh Unibo sandbox on a free port with a client session, both closed afterwards."""
    sandbox = UniboSandbox(KEYS, keep_payloads=True)
    async with SandboxServer(sandbox.app()) as server, aiohttp.ClientSession() as session:
        yield Bed(sandbox, server.url, session)


async def test_valid_batch_of_all_six_types_is_stored(bed: Bed) -> None:
    """A batch with one item of every type answers 204 with an empty body and stores each item once, in order."""
    status, body = await bed.post({"items": six_items()})
    assert (status, body) == (204, None)
    log = bed.sandbox.tenant("brand-a")
    assert list(log.received) == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert dict(log.by_event) == dict.fromkeys(["gameround", "deposit", "withdraw", "player", "game", "login"], 1)
    assert log.payloads["u4"] == six_items()[3]
    assert bed.sandbox.stats.accepted_batches == 1


@pytest.mark.parametrize(("key", "detail"), [(None, "Not authenticated"), ("key-x", "Invalid API key")], ids=str)
async def test_missing_or_wrong_key_is_403_and_stores_nothing(bed: Bed, key: str | None, detail: str) -> None:
    """Without an accepted x-api-key the batch is refused with 403 and nothing is stored."""
    status, body = await bed.post({"items": six_items()}, key=key)
    assert (status, body) == (403, {"detail": detail})
    assert bed.sandbox.total_unique == 0
    assert bed.sandbox.stats.auth_failures == 1


def _set(field: str, value: object) -> Callable[[Item], None]:
    def mutate(item: Item) -> None:
        item["data"][field] = value

    return mutate


def _drop(field: str) -> Callable[[Item], None]:
    def mutate(item: Item) -> None:
        del item["data"][field]

    return mutate


# (item to break in six_items(), mutation, field name (loc ["items", i, "data", name]) or loc after ["items", i], type)
INVALID = {
    "unknown event": (0, lambda i: i.update(event="bet"), ["event"], "literal_error"),
    "missing round_id": (0, _drop("round_id"), "round_id", "missing"),
    "empty player_id": (0, _set("player_id", ""), "player_id", "string_too_short"),
    "player_id not a string": (0, _set("player_id", 42), "player_id", "string_type"),
    "amount as string": (0, _set("amount", "2.5"), "amount", "float_type"),
    "amount as bool": (0, _set("amount", True), "amount", "float_type"),
    "negative amount": (0, _set("amount", -1), "amount", "greater_than_equal"),
    "zero win or bet": (0, _set("amount", 0), "amount", "greater_than"),
    "lower-case currency": (0, _set("currency", "eur"), "currency", "string_pattern_mismatch"),
    "crypto ticker": (0, _set("currency", "USDT"), "currency", "string_pattern_mismatch"),
    "3-letter crypto": (0, _set("currency", "BTC"), "currency", "string_pattern_mismatch"),
    "deposit in crypto": (1, _set("currency", "ETH"), "currency", "string_pattern_mismatch"),
    "withdraw in crypto": (2, _set("currency", "SOL"), "currency", "string_pattern_mismatch"),
    "negative withdraw": (2, _set("amount", -0.5), "amount", "greater_than_equal"),
    "is_win as string": (0, _set("is_win", "false"), "is_win", "bool_type"),
    "is_bonus null": (0, _set("is_bonus", None), "is_bonus", "bool_type"),
    "timestamp without zone": (0, _set("timestamp", "2025-01-15T12:00:00"), "timestamp", "timezone_aware"),
    "timestamp not UTC": (0, _set("timestamp", "2025-01-15T14:00:00+02:00"), "timestamp", "value_error"),
    "timestamp date only": (0, _set("timestamp", "2025-01-15"), "timestamp", "datetime_parsing"),
    "timestamp not a date": (0, _set("timestamp", "2025-02-30T00:00:00Z"), "timestamp", "datetime_parsing"),
    "timestamp as epoch": (0, _set("timestamp", 1736942400), "timestamp", "datetime_type"),
    "amount_eur as string": (1, _set("amount_eur", "46.2"), "amount_eur", "float_type"),
    "deposit status field": (1, _set("status", "success"), "status", "extra_forbidden"),
    "withdraw missing method": (2, _drop("method"), "method", "missing"),
    "gender spelled out": (3, _set("gender", "female"), "gender", "literal_error"),
    "tags as string": (3, _set("tags", "vip"), "tags", "list_type"),
    "tags with a number": (3, _set("tags", ["vip", 1]), "tags", "string_type"),
    "player email (PII)": (3, _set("email", "a@b.c"), "email", "extra_forbidden"),
    "player phone (PII)": (3, _set("phone", "+100"), "phone", "extra_forbidden"),
    "reg. not UTC": (3, _set("registration_date", "2024-01-01T01:00:00+01:00"), "registration_date", "value_error"),
    "has_freespins as bool": (4, _set("has_freespins", True), "has_freespins", "literal_error"),
    "game without game_id": (4, _drop("game_id"), "game_id", "missing"),
    "login without unique_id": (5, _drop("unique_id"), "unique_id", "missing"),
    "item extra key": (5, lambda i: i.update(brand="b"), ["brand"], "extra_forbidden"),
    "item without data": (5, lambda i: i.pop("data"), ["data"], "missing"),
    "data not an object": (5, lambda i: i.update(data=[1]), ["data"], "model_type"),
}  # fmt: skip


@pytest.mark.parametrize(("index", "mutate", "loc", "kind"), list(INVALID.values()), ids=list(INVALID))
async def test_invalid_item_is_422_naming_it_and_stores_nothing(
    bed: Bed, index: int, mutate: Callable[[Item], object], loc: str | list[str], kind: str
) -> None:
    """One invalid item makes the whole batch 422 with an error at its index, and nothing in the batch is stored."""
    items = six_items()
    mutate(items[index])
    status, body = await bed.post({"items": items})
    assert status == 422
    expected_loc = ["items", index, "data", loc] if isinstance(loc, str) else ["items", index, *loc]
    assert [(e["loc"], e["type"]) for e in body["detail"]] == [(expected_loc, kind)]
    assert all(isinstance(e["msg"], str) and e["msg"] for e in body["detail"])
    assert bed.sandbox.total_unique == 0
    assert bed.sandbox.stats.rejected_batches == 1


async def test_pii_in_a_player_item_is_named_as_personal_data(bed: Bed) -> None:
    """A PII key in a player item is rejected with a message saying personal data must not be sent."""
    items = six_items()
    items[3]["data"]["first_name"] = "Ann"
    status, body = await bed.post({"items": items})
    assert status == 422
    assert "personal data" in body["detail"][0]["msg"]


async def test_every_bad_item_is_listed(bed: Bed) -> None:
    """The 422 body lists every bad item of the batch, not only the first."""
    items = six_items()
    items[1]["data"]["amount"] = "1"
    items[4] = "not an object"  # type: ignore[call-overload]
    status, body = await bed.post({"items": items})
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["items", 1, "data", "amount"], ["items", 4]]


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        pytest.param(b"{not json", ["body"], "json_invalid", id="not json"),
        pytest.param(b"[]", ["body"], "model_type", id="array"),
        pytest.param(b"{}", ["items"], "missing", id="no items"),
        pytest.param(b'{"items": {}}', ["items"], "list_type", id="items not a list"),
        pytest.param(b'{"items": [], "x": 1}', ["x"], "extra_forbidden", id="extra top-level key"),
    ],
)
async def test_malformed_body_is_422(bed: Bed, body: bytes, loc: list[str], kind: str) -> None:
    """A body that is not {"items": [...]} is refused with 422 naming the problem."""
    headers = {"x-api-key": "key-a", "content-type": "application/json"}
    async with bed.session.post(f"{bed.url}/api/v1/events", data=body, headers=headers) as response:
        assert response.status == 422
        assert [(e["loc"], e["type"]) for e in (await response.json())["detail"]] == [(loc, kind)]


async def test_wrong_content_type_is_415(bed: Bed) -> None:
    """A body not sent as application/json is refused with 415 before it is parsed."""
    headers = {"x-api-key": "key-a", "content-type": "text/plain"}
    async with bed.session.post(f"{bed.url}/api/v1/events", data=b'{"items": []}', headers=headers) as response:
        assert response.status == 415
    assert bed.sandbox.stats.bad_requests == 1


async def test_optional_fields_accept_null(bed: Bed) -> None:
    """Every optional field of player, game and deposit may be null."""
    items = six_items()
    nulls = {1: ["amount_eur"], 3: ["username", "registration_date", "gender", "tags"], 4: ["has_freespins", "themes"]}
    for index, fields in nulls.items():
        for name in fields:
            items[index]["data"][name] = None
    status, _ = await bed.post({"items": items})
    assert status == 204


async def test_duplicates_are_stored_once_per_tenant(bed: Bed) -> None:
    """A unique_id is stored once per tenant with its first receive time; repeats are only counted."""
    items = six_items()
    assert (await bed.post({"items": [*items, items[0]]}))[0] == 204
    first_seen = dict(bed.sandbox.tenant("brand-a").received)
    assert (await bed.post({"items": items}))[0] == 204
    assert (await bed.post({"items": items}, key="key-b"))[0] == 204
    log = bed.sandbox.tenant("brand-a")
    assert (len(log.received), log.duplicates, log.received) == (6, 7, first_seen)
    assert bed.sandbox.unique_ids("brand-b") == [item["data"]["unique_id"] for item in items]
    assert bed.sandbox.stats.items_received == 19


async def test_fail_items_reject_batches_that_contain_them(bed: Bed) -> None:
    """A unique_id in fail_items makes its batch 422 at that index until fail_items is cleared."""
    status, _ = await bed.control("POST", "unibo/fail-items", {"unique_ids": ["u3"]})
    assert status == 200
    status, body = await bed.post({"items": six_items()})
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["items", 2, "data", "unique_id"]]
    assert bed.sandbox.total_unique == 0
    bed.sandbox.set_fail_items([])
    assert (await bed.post({"items": six_items()}))[0] == 204


async def test_partial_store_answers_510_with_the_failed_ids(bed: Bed) -> None:
    """With partial_store armed, a batch is half stored and answered 510 listing the rest; a resend completes it."""
    status, report = await bed.control("POST", "unibo/partial-store", {"batches": 1})
    assert (status, report["partial_store_remaining"]) == (200, 1)
    status, body = await bed.post({"items": six_items()})
    assert status == 510
    assert body["failed_unique_ids"] == ["u2", "u4", "u6"]
    assert isinstance(body["detail"], str)
    assert bed.sandbox.unique_ids("brand-a") == ["u1", "u3", "u5"]
    assert (await bed.post({"items": six_items()}))[0] == 204
    assert sorted(bed.sandbox.unique_ids("brand-a")) == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert bed.sandbox.tenant("brand-a").duplicates == 3


async def test_key_rotation_and_reset(bed: Bed) -> None:
    """Replacing the accepted keys refuses the old key with 403; reset restores the startup keys and clears storage."""
    status, _ = await bed.control("POST", "unibo/keys", {"keys": {"key-new": "brand-a"}})
    assert status == 200
    assert (await bed.post({"items": six_items()}))[0] == 403
    assert (await bed.post({"items": six_items()}, key="key-new"))[0] == 204
    status, report = await bed.control("POST", "unibo/reset")
    assert (status, report["unique_total"], report["requests"]) == (200, 0, 0)
    assert (await bed.post({"items": six_items()}, key="key-new"))[0] == 403
    assert (await bed.post({"items": six_items()}))[0] == 204


async def test_received_report_round_trip(bed: Bed) -> None:
    """GET received reports counters and, with ids=1, each tenant's unique_ids in arrival order."""
    await bed.post({"items": six_items()})
    await bed.post({"items": six_items("v")[:2]}, key="key-b")
    status, report = await bed.control("GET", "unibo/received?ids=1&tenant=brand-b")
    assert status == 200
    by_event = {"gameround": 1, "deposit": 1}
    assert report["tenants"] == {
        "brand-b": {"unique": 2, "duplicates": 0, "by_event": by_event, "unique_ids": ["v1", "v2"]}
    }
    assert (report["requests"], report["accepted_batches"], report["unique_total"]) == (2, 2, 8)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("unibo/keys", {"keys": ["k"]}, id="keys not a map"),
        pytest.param("unibo/fail-items", {"unique_ids": "u1"}, id="ids not a list"),
        pytest.param("unibo/partial-store", {"batches": -1}, id="negative batches"),
        pytest.param("unibo/keys", {}, id="no keys"),
        pytest.param("unibo/partial-store", None, id="no body"),
    ],
)
async def test_control_api_rejects_bad_bodies(bed: Bed, path: str, body: object) -> None:
    """A malformed control request gets 400 and changes nothing."""
    status, answer = await bed.control("POST", path, body)
    assert status == 400
    assert isinstance(answer["detail"], str)
    assert bed.sandbox.keys == KEYS


async def test_run_sandbox_forever_serves_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI helper prints the URL of a working sandbox and stops cleanly when cancelled."""
    served = Served(SANDBOXES["unibo"], 0, {"cli-key": "cli-brand"}, {})  # port 0 here: any free port
    task = asyncio.create_task(run_sandbox_forever("127.0.0.1", [served]))
    output = ""
    while "/api/v1/events" not in output:
        await asyncio.sleep(0.01)
        output += capsys.readouterr().out
    url = output.split("POST ", 1)[1].split()[0]
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"items": six_items()}, headers={"x-api-key": "cli-key"}) as response,
    ):
        assert response.status == 204
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
