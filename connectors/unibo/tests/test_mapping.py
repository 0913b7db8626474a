"""Golden mapping fixtures for the Unibo connector: input event → exact Unibo items, checked by the sandbox too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession

from connectors.unibo import connector
from connectors.unibo.client import batch_body
from connectors.unibo.config import UniboOptions
from gateway.events import decode
from gateway.sandbox.server import SandboxServer
from gateway.sandbox.unibo import UniboSandbox

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return dict(orjson.loads(path.read_bytes()))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_unique_id_is_the_event_id_and_key_the_player(path: Path) -> None:
    """unique_id is the stable event_id, and records are ordered by player (by game for catalog items)."""
    case = _load(path)
    for record in connector.map(decode(orjson.dumps(case["event"])), UniboOptions()):
        assert record.record_id == case["event"]["event_id"]
        assert orjson.loads(record.body)["data"]["unique_id"] == case["event"]["event_id"]
        assert record.key == case["event"].get("player_id", case["event"].get("game_id"))


def test_every_unibo_item_type_has_a_fixture() -> None:
    """All six Unibo item types are covered by golden fixtures."""
    kinds = {item["event"] for path in GOLDEN for item in _load(path)["items"]}
    assert kinds == {"gameround", "deposit", "withdraw", "player", "game", "login"}


def test_player_items_never_carry_pii() -> None:
    """No player item, whatever the input, carries names, email, phone, birthday, city, IP or tokens."""
    pii = {
        "first_name",
        "last_name",
        "email",
        "phone",
        "birthday",
        "city",
        "ip",
        "user_agent",
        "push_token",
        "auto_login_token",
        "email_confirmed_at",
        "phone_confirmed_at",
    }
    for path in GOLDEN:
        for item in _load(path)["items"]:
            assert not pii & set(item["data"]), path.stem


def test_options_change_method_operator_and_username() -> None:
    """default_method, operator and send_username are honoured."""
    deposit = decode(
        b'{"event_id": "d", "type": "deposit", "occurred_at": "2026-01-01T00:00:00Z", "player_id": "p",'
        b' "transaction_id": "t", "amount": 1, "currency": "EUR"}'
    )
    player = decode(
        b'{"event_id": "pl", "type": "player", "occurred_at": "2026-01-01T00:00:00Z", "player_id": "p",'
        b' "username": "fox"}'
    )
    options = UniboOptions(default_method="n/a", operator="op-1", send_username=False)
    assert orjson.loads(connector.map(deposit, options)[0].body)["data"]["method"] == "n/a"
    data = orjson.loads(connector.map(player, options)[0].body)["data"]
    assert data["operator"] == "op-1"
    assert "username" not in data


async def test_golden_items_pass_the_sandbox_checks() -> None:
    """Every golden item is accepted by the Unibo sandbox, which checks what Unibo documents."""
    sandbox = UniboSandbox({"k": "default"}, keep_payloads=True)
    records = [
        record
        for path in GOLDEN
        for record in connector.map(decode(orjson.dumps(_load(path)["event"])), UniboOptions())
    ]
    async with SandboxServer(sandbox.app()) as server, ClientSession() as session:
        response = await session.post(
            f"{server.url}/api/v1/events",
            data=batch_body(records),
            headers={"x-api-key": "k", "content-type": "application/json"},
        )
        assert response.status == 204, await response.text()
    assert sandbox.total_unique == len(records)
