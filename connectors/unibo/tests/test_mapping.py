"""Golden mapping fixtures for the Unibo connector: input event → exact Unibo items, checked by the sandbox too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from pydantic import ValidationError

from connectors.unibo import connector
from connectors.unibo.client import batch_body
from connectors.unibo.config import UniboOptions
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from gateway.errors import UnsupportedCurrency
from gateway.events import decode

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return dict(orjson.loads(path.read_bytes()))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_unique_id_is_the_event_id_and_key_the_player(path: Path) -> None:
    """unique_id is the stable event_id, and records are ordered by player (by game for catalog items)."""
    case = _load(path)
    for record in connector.map(
        decode(orjson.dumps(case["event"])), UniboOptions.model_validate(case.get("options", {}))
    ):
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
        for record in connector.map(
            decode(orjson.dumps(_load(path)["event"])), UniboOptions.model_validate(_load(path).get("options", {}))
        )
    ]
    async with SandboxServer(sandbox.app()) as server, ClientSession() as session:
        response = await session.post(
            f"{server.url}/api/v1/events",
            data=batch_body(records),
            headers={"x-api-key": "k", "content-type": "application/json"},
        )
        assert response.status == 204, await response.text()
    assert sandbox.total_unique == len(records)


def _money_events(currency: str) -> list[dict[str, Any]]:
    base = {"occurred_at": "2026-03-01T12:00:00Z", "player_id": "p-1", "currency": currency}
    return [
        {**base, "event_id": "gr", "type": "gameround", "round_id": "r", "game_id": "g", "kind": "bet", "amount": "5"},
        {**base, "event_id": "dp", "type": "deposit", "transaction_id": "t1", "amount": "5", "method": "m"},
        {**base, "event_id": "wd", "type": "withdrawal", "transaction_id": "t2", "amount": "5", "method": "m"},
    ]


@pytest.mark.parametrize("currency", ["USDT", "BTC", "ETH", "SOL", "TON", "MATIC"])
def test_a_crypto_currency_nobody_mapped_is_unsupported_currency(currency: str) -> None:
    """Unibo asks for ISO-4217: every money item in a crypto ticker is refused as unsupported_currency (dead-lettered
    with that reason), three-letter tickers included, and never sent as it is."""
    for event in _money_events(currency):
        with pytest.raises(UnsupportedCurrency) as raised:
            connector.map(decode(orjson.dumps(event)), UniboOptions())
        assert raised.value.reason == "unsupported_currency"
        assert currency in str(raised.value) and "currency_map" in str(raised.value)


def test_the_currency_map_sends_the_operators_code_and_the_amount_unchanged() -> None:
    """A mapped ticker is sent as its ISO-4217 code (upper-cased from the config), the amount as it is."""
    options = UniboOptions.model_validate({"currency_map": {"usdt": "usd"}})
    for event in _money_events("USDT"):
        (record,) = connector.map(decode(orjson.dumps(event)), options)
        data = orjson.loads(record.body)["data"]
        assert (data["currency"], data["amount"]) == ("USD", 5.0)
    player = {"event_id": "pl", "type": "player", "occurred_at": "2026-03-01T12:00:00Z", "player_id": "p-1"}
    for currency, sent in (("USDT", "USD"), ("BTC", "BTC"), ("EUR", "EUR")):  # a player's currency is a free string
        (record,) = connector.map(decode(orjson.dumps({**player, "currency": currency})), options)
        assert orjson.loads(record.body)["data"]["currency"] == sent


@pytest.mark.parametrize("mapping", [{"USDT": "USDC"}, {"BTC": "XBT"}, {"USDT": "usd1"}, {"": "USD"}])
def test_a_currency_map_to_a_non_iso_code_fails_at_startup(mapping: dict[str, str]) -> None:
    """The map's targets must be ISO-4217 codes, else the configuration is refused before anything is sent."""
    with pytest.raises(ValidationError, match="currency_map"):
        UniboOptions.model_validate({"currency_map": mapping})


@pytest.mark.parametrize(("kind", "amount"), [("win", "0"), ("bet", "0.00"), ("win", 0)])
def test_a_zero_bet_or_win_is_not_sent(kind: str, amount: Any) -> None:
    """Unibo's gameround amount is positive: a zero win (a loss) or a zero-stake bet maps to nothing (filtered, settled
    at once), whatever its currency; a deposit or withdrawal of 0 is still sent (the document asks no sign there)."""
    event = {"event_id": "gr", "type": "gameround", "occurred_at": "2026-03-01T12:00:00Z", "player_id": "p-1",
             "round_id": "r", "game_id": "g", "kind": kind, "amount": amount, "currency": "EUR"}  # fmt: skip
    assert list(connector.map(decode(orjson.dumps(event)), UniboOptions())) == []
    assert list(connector.map(decode(orjson.dumps({**event, "currency": "USDT"})), UniboOptions())) == []
    withdrawal = {**_money_events("EUR")[2], "amount": "0"}
    assert len(connector.map(decode(orjson.dumps(withdrawal)), UniboOptions())) == 1
