"""Tests of the normalized event contract: every type parses as documented, invalid messages fail cleanly."""

from __future__ import annotations

import json
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway.errors import InvalidEvent, InvalidJson
from gateway.event_fields import MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, MAX_CUSTOM_TEXT, MAX_ID_LENGTH
from gateway.events import (
    CRYPTO_TICKERS,
    EVENT_TYPES,
    BonusEvent,
    CustomEvent,
    DepositEvent,
    Event,
    GameEvent,
    GameRoundEvent,
    LoginEvent,
    PlayerEvent,
    RevenueEvent,
    SegmentEvent,
    SportsBetEvent,
    SportsSelection,
    WalletEvent,
    WithdrawalEvent,
    decode,
    json_schema,
)

COMMON: dict[str, Any] = {"event_id": "evt-1", "occurred_at": "2024-05-01T12:00:00+02:00", "player_id": "p-1"}
UTC_NOON = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

MINIMAL: dict[str, dict[str, Any]] = {
    "deposit": {"transaction_id": "tx-1", "amount": 10.1, "currency": "EUR"},
    "withdrawal": {"transaction_id": "tx-2", "amount": "25.50", "currency": "usd"},
    "gameround": {"round_id": "r-1", "game_id": "g-1", "kind": "bet", "amount": 2, "currency": "EUR"},
    "login": {},
    "player": {},
    "game": {"game_id": "g-1"},
    "custom": {"name": "mission_done"},
    "revenue": {"revenue_id": "rev-1", "amount": 4.99, "currency": "USDT"},
    "segment": {"segments": ["vip"], "action": "add"},
    "wallet": {"wallet_id": "w-1", "balance": "0", "currency": "BTC"},
    "bonus": {"assignment_id": "a-1", "bonus_id": "b-1", "status": "active"},
    "sports_bet": {"bet_id": "bet-1", "status": "accepted", "bet_type": "single"},
}

SELECTION: dict[str, Any] = {
    "selection_id": "s-1",
    "event_id": "match-1",
    "market": "Match Result",
    "ratio": 3.6,
    "status": "win",
    "event_title": "Bolivia - Peru",
    "event_status": "ended",
    "event_type": "match",
    "event_start": "2024-05-01T18:00:00Z",
    "tournament_id": "t-1",
    "tournament_name": "Copa",
    "tournament_start": "2024-04-01T00:00:00-03:00",
    "tournament_end": "2024-06-01T00:00:00Z",
    "sport_id": "fb",
    "sport_name": "Football",
    "country_code": "International",
}

FULL: dict[str, dict[str, Any]] = {
    "deposit": {
        "transaction_id": "tx-1",
        "amount": "100.10",
        "currency": "eur",
        "status": "pending",
        "method": "card",
        "amount_eur": 100.1,
        "money_type": "bonus",
        "wallet_id": "w-1",
        "requisite": "4111********1111",
        "ref_code": "aff-1",
        "comment": "first deposit",
    },
    "withdrawal": {
        "transaction_id": "tx-2",
        "amount": 0.3,
        "currency": "USDC",
        "status": "cancelled",
        "method": "crypto",
        "amount_eur": "0.28",
        "money_type": "real",
        "wallet_id": "w-2",
        "requisite": "0xAB…CD",
        "ref_code": "aff-2",
        "comment": "cancelled by player",
    },
    "gameround": {
        "round_id": "r-1",
        "game_id": "g-1",
        "kind": "win",
        "amount": "12.34",
        "currency": "EUR",
        "is_bonus": True,
        "session_id": "sess-1",
        "transaction_id": "tx-3",
        "game_name": "Book of Ra",
        "game_vendor": "Novomatic",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
    },
    "login": {
        "success": False,
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "host": "casino.example",
        "traffic_source": "seo",
        "ref_code": "aff-1",
    },
    "player": {
        "registered_at": "2024-01-02T03:04:05-01:00",
        "username": "lucky",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "phone": "+4912345678",
        "gender": "female",
        "birthday": "1990-02-03",
        "country": "de",
        "city": "Berlin",
        "locale": "de_DE",
        "timezone": "Europe/Berlin",
        "currency": "eur",
        "affiliate": "aff",
        "ref_code": "ref",
        "traffic_source": "ads",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "tags": ["vip", "new"],
        "status": "active",
        "is_blocked": False,
        "self_excluded": False,
        "consent_email": True,
        "consent_sms": False,
        "consent_push": True,
        "email_confirmed_at": "2024-01-02T04:00:00Z",
        "phone_confirmed_at": "2024-01-02T05:00:00+00:00",
        "push_token": "push-abc",
        "auto_login_token": "auto-xyz",
        "custom": {"level": 3, "vip": True, "ltv": 10.5, "seen_at": "2024-01-01T00:00:00+01:00", "club": "gold"},
    },
    "game": {
        "game_id": "g-1",
        "name": "Book of Ra",
        "provider": "Novomatic",
        "categories": ["slots"],
        "features": ["freespins"],
        "themes": ["egypt"],
        "device": "all",
        "has_freespins": True,
    },
    "custom": {"name": "mission_done", "value": "2.5", "tags": ["m1"], "attributes": {"step": 2, "ok": True, "r": 0.5}},
    "revenue": {"revenue_id": "rev-1", "amount": 4.99, "currency": "USDT", "kind": "refund", "product_id": "pack-1"},
    "segment": {"segments": ["vip", "whales"], "action": "remove"},
    "wallet": {"wallet_id": "w-1", "balance": "-1.5", "currency": "eth", "wallet_type": "cashback"},
    "bonus": {
        "assignment_id": "a-1",
        "bonus_id": "b-1",
        "bonus_name": "Welcome",
        "status": "expired",
        "end_date": "2024-06-01T00:00:00+02:00",
    },
    "sports_bet": {
        "bet_id": "bet-1",
        "status": "win",
        "bet_type": "express",
        "stake": 10,
        "win_amount": "36.00",
        "currency": "EUR",
        "ref_code": "aff-1",
        "selections": [SELECTION],
    },
}


def message(event_type: str, fields: dict[str, Any], **common: Any) -> dict[str, Any]:
    """Build a message dict: common fields, then type, then the type's fields (game has no player_id)."""
    body = {**COMMON, **common, "type": event_type, **fields}
    if event_type == "game":
        body.pop("player_id", None)
    return body


def decode_dict(body: dict[str, Any]) -> Event:
    """Serialize a dict to JSON bytes (integers of any size allowed) and decode it."""
    return decode(json.dumps(body).encode())


VALID_CASES = [
    pytest.param(
        "deposit",
        MINIMAL["deposit"],
        DepositEvent,
        {
            "amount": Decimal("10.1"),
            "currency": "EUR",
            "status": "success",
            "money_type": "real",
            "amount_eur": None,
            "brand": "default",
            "schema_version": 1,
        },
        id="deposit-minimal",
    ),
    pytest.param(
        "deposit",
        FULL["deposit"],
        DepositEvent,
        {
            "amount": Decimal("100.10"),
            "amount_eur": Decimal("100.1"),
            "currency": "EUR",
            "status": "pending",
            "money_type": "bonus",
            "requisite": "4111********1111",
        },
        id="deposit-full",
    ),
    pytest.param(
        "withdrawal",
        MINIMAL["withdrawal"],
        WithdrawalEvent,
        {"amount": Decimal("25.50"), "currency": "USD", "status": "success"},
        id="withdrawal-minimal",
    ),
    pytest.param(
        "withdrawal",
        FULL["withdrawal"],
        WithdrawalEvent,
        {"amount": Decimal("0.3"), "amount_eur": Decimal("0.28"), "currency": "USDC", "status": "cancelled"},
        id="withdrawal-full",
    ),
    pytest.param(
        "gameround",
        MINIMAL["gameround"],
        GameRoundEvent,
        {"kind": "bet", "amount": Decimal(2), "is_bonus": False, "session_id": "r-1", "transaction_id": None},
        id="gameround-minimal",
    ),
    pytest.param(
        "gameround",
        FULL["gameround"],
        GameRoundEvent,
        {
            "kind": "win",
            "amount": Decimal("12.34"),
            "is_bonus": True,
            "session_id": "sess-1",
            "game_vendor": "Novomatic",
        },
        id="gameround-full",
    ),
    pytest.param("login", MINIMAL["login"], LoginEvent, {"success": True, "ip": None}, id="login-minimal"),
    pytest.param("login", FULL["login"], LoginEvent, {"success": False, "host": "casino.example"}, id="login-full"),
    pytest.param("player", MINIMAL["player"], PlayerEvent, {"email": None, "custom": None}, id="player-minimal"),
    pytest.param(
        "player",
        FULL["player"],
        PlayerEvent,
        {
            "registered_at": datetime(2024, 1, 2, 4, 4, 5, tzinfo=UTC),
            "birthday": date(1990, 2, 3),
            "country": "DE",
            "currency": "EUR",
            "gender": "female",
            "consent_push": True,
            "phone_confirmed_at": datetime(2024, 1, 2, 5, 0, tzinfo=UTC),
            "custom": {
                "level": 3,
                "vip": True,
                "ltv": Decimal("10.5"),
                "seen_at": datetime(2023, 12, 31, 23, 0, tzinfo=UTC),
                "club": "gold",
            },
        },
        id="player-full",
    ),
    pytest.param("game", MINIMAL["game"], GameEvent, {"player_id": None, "categories": None}, id="game-minimal"),
    pytest.param("game", FULL["game"], GameEvent, {"categories": ["slots"], "has_freespins": True}, id="game-full"),
    pytest.param(
        "custom",
        MINIMAL["custom"],
        CustomEvent,
        {"value": Decimal(1), "tags": [], "attributes": {}},
        id="custom-minimal",
    ),
    pytest.param(
        "custom",
        FULL["custom"],
        CustomEvent,
        {"value": Decimal("2.5"), "tags": ["m1"], "attributes": {"step": 2, "ok": True, "r": Decimal("0.5")}},
        id="custom-full",
    ),
    pytest.param(
        "revenue",
        MINIMAL["revenue"],
        RevenueEvent,
        {"amount": Decimal("4.99"), "kind": "purchase", "player_id": "p-1"},
        id="revenue-minimal",
    ),
    pytest.param(
        "revenue", FULL["revenue"], RevenueEvent, {"kind": "refund", "product_id": "pack-1"}, id="revenue-full"
    ),
    pytest.param(
        "segment", MINIMAL["segment"], SegmentEvent, {"segments": ["vip"], "action": "add"}, id="segment-minimal"
    ),
    pytest.param(
        "segment", FULL["segment"], SegmentEvent, {"segments": ["vip", "whales"], "action": "remove"}, id="segment-full"
    ),
    pytest.param(
        "wallet", MINIMAL["wallet"], WalletEvent, {"balance": Decimal(0), "wallet_type": "real"}, id="wallet-minimal"
    ),
    pytest.param(
        "wallet",
        FULL["wallet"],
        WalletEvent,
        {"balance": Decimal("-1.5"), "currency": "ETH", "wallet_type": "cashback"},
        id="wallet-full",
    ),
    pytest.param("bonus", MINIMAL["bonus"], BonusEvent, {"status": "active", "end_date": None}, id="bonus-minimal"),
    pytest.param(
        "bonus",
        FULL["bonus"],
        BonusEvent,
        {"bonus_name": "Welcome", "end_date": datetime(2024, 5, 31, 22, 0, tzinfo=UTC)},
        id="bonus-full",
    ),
    pytest.param(
        "sports_bet",
        MINIMAL["sports_bet"],
        SportsBetEvent,
        {"stake": None, "currency": None, "selections": []},
        id="sports_bet-minimal",
    ),
    pytest.param(
        "sports_bet",
        FULL["sports_bet"],
        SportsBetEvent,
        {"stake": Decimal(10), "win_amount": Decimal("36.00"), "currency": "EUR"},
        id="sports_bet-full",
    ),
]


@pytest.mark.parametrize(("event_type", "fields", "model", "expected"), VALID_CASES)
def test_valid_example_parses(
    event_type: str, fields: dict[str, Any], model: type[Any], expected: dict[str, Any]
) -> None:
    """A valid example of each type decodes to its model with the expected values, defaults and UTC times."""
    event = decode_dict(message(event_type, fields))
    assert type(event) is model
    assert event.type == event_type
    assert event.event_id == "evt-1"
    assert event.occurred_at == UTC_NOON
    assert event.occurred_at.tzinfo is UTC
    for name, value in expected.items():
        actual = getattr(event, name)
        assert actual == value, name
        assert type(actual) is type(value), name


def test_examples_cover_every_type() -> None:
    """The minimal and full tables name every type of the contract, in the contract's order."""
    assert tuple(MINIMAL) == EVENT_TYPES
    assert tuple(FULL) == EVENT_TYPES
    assert {case.values[0] for case in VALID_CASES} == set(EVENT_TYPES)


def test_event_types_match_the_union() -> None:
    """EVENT_TYPES lists the contract's types and each union member's `type` literal, in order."""
    assert EVENT_TYPES == (
        "deposit", "withdrawal", "gameround", "login", "player", "game",
        "custom", "revenue", "segment", "wallet", "bonus", "sports_bet",
    )  # fmt: skip
    union = typing.get_args(Event)[0]
    literals = tuple(typing.get_args(model.model_fields["type"].annotation)[0] for model in typing.get_args(union))
    assert literals == EVENT_TYPES


def test_sports_selection_is_parsed() -> None:
    """A sports bet's selection is a SportsSelection with exact ratio and UTC times."""
    event = decode_dict(message("sports_bet", FULL["sports_bet"]))
    assert isinstance(event, SportsBetEvent)
    (selection,) = event.selections
    assert isinstance(selection, SportsSelection)
    assert selection.ratio == Decimal("3.6")
    assert selection.event_type == "match"
    assert selection.tournament_start == datetime(2024, 4, 1, 3, 0, tzinfo=UTC)
    assert selection.country_code == "International"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-05-01T12:00:00+02:00", UTC_NOON, id="plus-two"),
        pytest.param("2024-05-01T10:00:00Z", UTC_NOON, id="zulu"),
        pytest.param("2024-05-01t10:00:00z", UTC_NOON, id="lower-case-t-z"),
        pytest.param("2024-05-01 04:30:00-05:30", UTC_NOON, id="space-and-negative-half-hour"),
        pytest.param("2024-05-01T10:00:00.250+00:00", UTC_NOON.replace(microsecond=250000), id="fraction"),
    ],
)
def test_occurred_at_is_normalized_to_utc(text: str, expected: datetime) -> None:
    """Any zone offset is converted to UTC, and the stored tzinfo is datetime.UTC itself."""
    event = decode_dict(message("login", {}, occurred_at=text))
    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        pytest.param("10.1", Decimal("10.1"), id="json-number-10.1"),
        pytest.param("0.3", Decimal("0.3"), id="json-number-0.3"),
        pytest.param('"10.10"', Decimal("10.10"), id="string-keeps-scale"),
        pytest.param("1e3", Decimal(1000), id="exponent"),
        pytest.param('"1E-18"', Decimal("1E-18"), id="smallest-unit"),
        pytest.param("12345678901234.56", Decimal("12345678901234.56"), id="16-digits-number"),
        pytest.param("1.123456789012345678", Decimal("1.123456789012345678"), id="19-digits-number-exact"),
        pytest.param("123456789012345678", Decimal(123456789012345678), id="big-integer"),
        pytest.param("0", Decimal(0), id="zero"),
    ],
)
def test_amounts_are_exact_decimals(literal: str, expected: Decimal) -> None:
    """JSON numbers and numeric strings become the exact Decimal written, never a float approximation."""
    raw = b'{"type":"deposit","event_id":"e","occurred_at":"2024-05-01T10:00:00Z","player_id":"p",'
    raw += b'"transaction_id":"t","currency":"EUR","amount":' + literal.encode() + b"}"
    event = decode(raw)
    assert isinstance(event, DepositEvent)
    assert type(event.amount) is Decimal
    assert event.amount == expected
    assert str(event.amount) == str(expected)


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param(b"1e-400", id="underflows-to-zero-as-f64"),
        pytest.param(b"0." + b"0" * 400 + b"1", id="underflows-without-exponent"),
        pytest.param(b"1e400", id="overflows-as-f64"),
        pytest.param(b'"0E-999999999"', id="zero-with-huge-negative-exponent"),
        pytest.param(b"0.1234567890123456789", id="19-places-written-out"),
    ],
)
def test_extreme_amounts_are_refused_not_rounded(literal: bytes) -> None:
    """An amount f64 would round (to 0 or infinity) or that has too many places is refused, never stored rounded."""
    raw = b'{"type":"revenue","event_id":"e","occurred_at":"2024-05-01T10:00:00Z","revenue_id":"r",'
    raw += b'"currency":"EUR","amount":' + literal + b"}"
    with pytest.raises(InvalidEvent) as caught:
        decode(raw)
    assert error_paths(caught.value.detail) == ["amount"]


def test_long_numbers_in_custom_values_stay_exact() -> None:
    """A fractional JSON number of more than 15 digits in a custom value keeps every digit."""
    raw = (
        b'{"type":"player","event_id":"e","occurred_at":"2024-05-01T10:00:00Z","player_id":"p",'
        b'"custom":{"n":1234567.123456789012,"s":"9999999999999999.5"}}'
    )
    event = decode(raw)
    assert isinstance(event, PlayerEvent)
    assert event.custom == {"n": Decimal("1234567.123456789012"), "s": "9999999999999999.5"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"event_id":1.2345678901234567,', id="string-field"),
        pytest.param(b'{"event_id":"e","tags":[1.2345678901234567],', id="list-of-strings"),
    ],
)
def test_long_numbers_never_become_strings(body: bytes) -> None:
    """Quoting long numbers for exactness cannot make a number acceptable where the contract wants text."""
    raw = body + b'"type":"custom","name":"n","occurred_at":"2024-05-01T10:00:00Z","player_id":"p"}'
    with pytest.raises(InvalidEvent):
        decode(raw)


def test_player_custom_keeps_json_kinds() -> None:
    """Player custom values: bool stays bool, int stays int, numbers are Decimal, only zoned RFC 3339 is a datetime."""
    custom = {
        "flag": True,
        "off": False,
        "one": 1,
        "zero": 0,
        "big": 10**20,
        "one_point_zero": 1.0,
        "numeric_text": "10",
        "date_only": "2024-05-01",
        "naive": "2024-05-01T10:00:00",
        "unix": "1714557600",
        "not_a_date": "2024-13-01T00:00:00Z",
        "zoned": "2024-05-01T12:00:00+02:00",
        "labels": ["a", "b"],
        "empty": [],
    }
    event = decode_dict(message("player", {"custom": custom}))
    assert isinstance(event, PlayerEvent)
    assert event.custom is not None
    kinds = {name: type(value) for name, value in event.custom.items()}
    assert kinds == {
        "flag": bool,
        "off": bool,
        "one": int,
        "zero": int,
        "big": int,
        "one_point_zero": Decimal,
        "numeric_text": str,
        "date_only": str,
        "naive": str,
        "unix": str,
        "not_a_date": str,
        "zoned": datetime,
        "labels": list,
        "empty": list,
    }
    assert event.custom["zoned"] == UTC_NOON
    assert event.custom["one_point_zero"] == Decimal("1.0")


def test_custom_event_attributes_keep_bool_and_int_apart() -> None:
    """Custom event attributes keep true as bool and 1 as int, and never confuse the two."""
    event = decode_dict(message("custom", {"name": "n", "attributes": {"t": True, "i": 1, "f": 0.25, "s": "x"}}))
    assert isinstance(event, CustomEvent)
    assert [type(value) for value in event.attributes.values()] == [bool, int, Decimal, str]
    assert event.attributes["t"] is True
    assert event.attributes["f"] == Decimal("0.25")


def missing_field_cases() -> list[Any]:
    """One rejection case per (type, required field)."""
    required = {
        "deposit": ["transaction_id", "amount", "currency"],
        "withdrawal": ["transaction_id", "amount", "currency"],
        "gameround": ["round_id", "game_id", "kind", "amount", "currency"],
        "login": [],
        "player": [],
        "game": ["game_id"],
        "custom": ["name"],
        "revenue": ["revenue_id", "amount", "currency"],
        "segment": ["segments", "action"],
        "wallet": ["wallet_id", "balance", "currency"],
        "bonus": ["assignment_id", "bonus_id", "status"],
        "sports_bet": ["bet_id", "status", "bet_type"],
    }
    cases = []
    for event_type, names in required.items():
        needs_player = event_type not in {"game", "revenue"}
        for name in ["event_id", "occurred_at", *(["player_id"] if needs_player else []), *names]:
            body = message(event_type, FULL[event_type])
            del body[name]
            cases.append(pytest.param(body, name, id=f"{event_type}-without-{name}"))
    return cases


@pytest.mark.parametrize(("body", "field"), missing_field_cases())
def test_missing_required_field_is_rejected(body: dict[str, Any], field: str) -> None:
    """Each required field of each type is required, and the detail names it."""
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(body)
    assert field in error_paths(caught.value.detail)
    assert f"{field}: required" in caught.value.detail


def error_paths(detail: str) -> list[str]:
    """The field paths an InvalidEvent detail names ("<type> event: <path>: <problem>; <path>: <problem>")."""
    body = detail.split(" event: ", 1)[1] if " event: " in detail.split(": ", 1)[0] + ": " else detail
    return [entry.split(": ", 1)[0] for entry in body.split("; ")]


def with_changes(event_type: str, **changes: Any) -> dict[str, Any]:
    """A valid full message of that type with some fields replaced."""
    return {**message(event_type, FULL[event_type]), **changes}


REJECTIONS = [
    pytest.param(with_changes("deposit", occurred_at="2024-05-01T12:00:00"), "occurred_at", id="naive-timestamp"),
    pytest.param(with_changes("deposit", occurred_at="2024-05-01"), "occurred_at", id="date-only-timestamp"),
    pytest.param(with_changes("deposit", occurred_at=1714557600), "occurred_at", id="unix-number-timestamp"),
    pytest.param(with_changes("deposit", occurred_at="1714557600"), "occurred_at", id="unix-string-timestamp"),
    pytest.param(with_changes("deposit", occurred_at="yesterday"), "occurred_at", id="words-timestamp"),
    pytest.param(with_changes("deposit", amount=-0.01), "amount", id="deposit-negative-amount"),
    pytest.param(with_changes("withdrawal", amount="-5"), "amount", id="withdrawal-negative-amount"),
    pytest.param(with_changes("gameround", amount=-1), "amount", id="gameround-negative-amount"),
    pytest.param(with_changes("deposit", amount="NaN"), "amount", id="nan-string"),
    pytest.param(with_changes("deposit", amount="Infinity"), "amount", id="infinity-string"),
    pytest.param(with_changes("deposit", amount="1e999999999"), "amount", id="huge-exponent"),
    pytest.param(with_changes("deposit", amount="1e-999999999"), "amount", id="tiny-exponent"),
    pytest.param(with_changes("deposit", amount="ten"), "amount", id="amount-words"),
    pytest.param(with_changes("deposit", amount=True), "amount", id="amount-bool"),
    pytest.param(with_changes("deposit", currency="EURO"), "currency", id="currency-four-letters"),
    pytest.param(with_changes("deposit", currency="E1R"), "currency", id="currency-digit"),
    pytest.param(with_changes("deposit", currency=""), "currency", id="currency-empty"),
    pytest.param(with_changes("deposit", currency=978), "currency", id="currency-number"),
    pytest.param(with_changes("deposit", currency="ÄUR"), "currency", id="currency-non-ascii"),
    pytest.param(with_changes("deposit", currency="USDTX"), "currency", id="currency-unknown-ticker"),
    pytest.param(with_changes("deposit", status="ok"), "status", id="deposit-status"),
    pytest.param(with_changes("deposit", money_type="fake"), "money_type", id="money-type"),
    pytest.param(with_changes("gameround", kind="spin"), "kind", id="gameround-kind"),
    pytest.param(with_changes("gameround", is_bonus="true"), "is_bonus", id="bool-as-string"),
    pytest.param(with_changes("gameround", is_bonus=1), "is_bonus", id="bool-as-int"),
    pytest.param(with_changes("custom", value=True), "value", id="custom-value-bool"),
    pytest.param(with_changes("custom", attributes={"a": [1]}), "attributes.a", id="custom-attribute-list"),
    pytest.param(with_changes("player", custom={"a": [1, 2]}), "custom.a", id="player-custom-list-of-ints"),
    pytest.param(with_changes("player", custom={"a": {"b": 1}}), "custom.a", id="player-custom-object"),
    pytest.param(with_changes("player", custom={"a": None}), "custom.a", id="player-custom-null-value"),
    pytest.param(with_changes("player", gender="m"), "gender", id="player-gender"),
    pytest.param(with_changes("player", country="DEU"), "country", id="player-country-alpha3"),
    pytest.param(with_changes("player", birthday=631152000), "birthday", id="player-birthday-number"),
    pytest.param(with_changes("player", consent_sms="yes"), "consent_sms", id="player-consent-string"),
    pytest.param(with_changes("segment", segments=[]), "segments", id="segment-empty"),
    pytest.param(with_changes("segment", action="toggle"), "action", id="segment-action"),
    pytest.param(with_changes("bonus", status="pending"), "status", id="bonus-status"),
    pytest.param(with_changes("revenue", kind="chargeback"), "kind", id="revenue-kind"),
    pytest.param(
        with_changes("sports_bet", selections=[{"selection_id": "s", "event_id": "e"}]),
        "selections[0].market",
        id="selection-market-missing",
    ),
    pytest.param(with_changes("deposit", player_id=""), "player_id", id="player-id-empty"),
    pytest.param(with_changes("deposit", player_id="p" * 129), "player_id", id="player-id-too-long"),
    pytest.param(with_changes("deposit", player_id=42), "player_id", id="player-id-number"),
    pytest.param(with_changes("login", player_id=None), "player_id", id="player-id-null"),
    pytest.param(with_changes("deposit", event_id="e" * 129), "event_id", id="event-id-too-long"),
    pytest.param(with_changes("deposit", event_id=""), "event_id", id="event-id-empty"),
    pytest.param(with_changes("deposit", brand=""), "brand", id="brand-empty"),
    pytest.param(with_changes("deposit", schema_version=2), "schema_version", id="schema-version-2"),
    pytest.param(with_changes("deposit", type="refund"), "type", id="unknown-type"),
    pytest.param(with_changes("deposit", type="Deposit"), "type", id="type-wrong-case"),
    pytest.param(with_changes("deposit", type=1), "type", id="type-number"),
    pytest.param({k: v for k, v in message("deposit", FULL["deposit"]).items() if k != "type"}, "type", id="no-type"),
]


@pytest.mark.parametrize(("body", "field"), REJECTIONS)
def test_invalid_event_is_rejected(body: dict[str, Any], field: str) -> None:
    """An event that breaks the contract raises InvalidEvent whose detail starts its entry with the field path."""
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(body)
    assert caught.value.reason == "invalid_event"
    assert field in error_paths(caught.value.detail)


def test_boundary_lengths_are_accepted() -> None:
    """event_id and player_id of exactly 128 characters, and a 128-character brand, are valid."""
    event = decode_dict(with_changes("deposit", event_id="e" * 128, player_id="p" * 128, brand="b" * 128))
    assert len(event.event_id) == 128


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b'{"type":"login","event_id":"\xc3"}', id="broken-utf8-in-string"),
        pytest.param(b'{"type":"login"', id="truncated"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b'"deposit"', id="string"),
        pytest.param(None, id="tombstone"),
    ],
)
def test_non_object_input_is_invalid_json(raw: bytes | None) -> None:
    """Bytes that are not a UTF-8 JSON object raise InvalidJson, never InvalidEvent or anything else."""
    with pytest.raises(InvalidJson) as caught:
        decode(raw)
    assert caught.value.reason == "invalid_json"
    assert caught.value.detail


def test_player_changes_distinguish_absent_from_null() -> None:
    """changes() has the fields the message carried (null as None) and nothing it left out."""
    event = decode_dict(message("player", {"email": None, "city": "Berlin", "custom": {"a": 1}, "x_new": 1}))
    assert isinstance(event, PlayerEvent)
    assert event.changes() == {"city": "Berlin", "email": None, "custom": {"a": 1}}
    assert "phone" not in event.changes()
    assert event.phone is None  # absent and null read the same way; only changes() tells them apart


def test_player_changes_of_a_bare_message_are_empty() -> None:
    """A player message with only common fields changes nothing."""
    event = decode_dict(message("player", {}, brand="b2"))
    assert isinstance(event, PlayerEvent)
    assert event.changes() == {}


def test_player_changes_carry_every_profile_field() -> None:
    """A full player message lists every profile field and no common field."""
    event = decode_dict(message("player", FULL["player"]))
    assert isinstance(event, PlayerEvent)
    assert list(event.changes()) == list(FULL["player"])


def test_unknown_fields_are_kept_and_ignored() -> None:
    """Unknown fields, top-level and nested, do not fail validation and stay readable in model_extra."""
    selection = {**SELECTION, "future_odds_format": "decimal"}
    body = message("sports_bet", {**FULL["sports_bet"], "selections": [selection]}, x_trace={"id": 1}, x_flag=True)
    event = decode_dict(body)
    assert isinstance(event, SportsBetEvent)
    assert event.model_extra == {"x_trace": {"id": 1}, "x_flag": True}
    assert event.selections[0].model_extra == {"future_odds_format": "decimal"}


def test_game_ignores_a_player_id() -> None:
    """A catalog `game` message with a player_id is valid; the id is dropped, not serialized."""
    event = decode_dict({**message("game", MINIMAL["game"]), "player_id": "p-1"})
    assert isinstance(event, GameEvent)
    assert event.player_id is None
    assert "player_id" not in event.model_dump()


def test_revenue_player_id_is_optional() -> None:
    """Revenue without player_id is operator-level revenue."""
    body = message("revenue", MINIMAL["revenue"])
    del body["player_id"]
    event = decode_dict(body)
    assert isinstance(event, RevenueEvent)
    assert event.player_id is None


def test_revenue_amount_may_be_negative() -> None:
    """The contract bounds revenue amounts only to be finite, so a negative correction is accepted."""
    event = decode_dict(message("revenue", {**MINIMAL["revenue"], "amount": "-4.99"}))
    assert isinstance(event, RevenueEvent)
    assert event.amount == Decimal("-4.99")


@pytest.mark.parametrize("ticker", sorted(CRYPTO_TICKERS))
def test_crypto_tickers_are_currencies(ticker: str) -> None:
    """Every listed crypto ticker is a currency, in any case, stored upper-cased."""
    event = decode_dict(message("wallet", {**MINIMAL["wallet"], "currency": ticker.lower()}))
    assert isinstance(event, WalletEvent)
    assert event.currency == ticker


def test_crypto_ticker_list_matches_intarget() -> None:
    """CRYPTO_TICKERS is the list of vendors/intarget.md (20 tickers)."""
    assert len(CRYPTO_TICKERS) == 20
    assert {"BTC", "USDT", "MATIC", "NEAR", "SHIB"} <= CRYPTO_TICKERS


def test_error_detail_does_not_echo_values() -> None:
    """Error details name fields and problems but never repeat what the producer sent."""
    secret = "ann.secret@example.com"
    bodies = [
        with_changes("deposit", type=secret),
        with_changes("deposit", amount=secret, currency=secret, occurred_at=secret, status=secret),
        with_changes("player", gender=secret, country=secret, birthday=secret, custom={"k": [secret, 1]}),
    ]
    for body in bodies:
        with pytest.raises(InvalidEvent) as caught:
            decode_dict(body)
        assert secret not in caught.value.detail
        assert "ann.secret" not in str(caught.value)


def test_error_detail_is_one_bounded_line() -> None:
    """Hundreds of errors still give a single line of at most 1024 characters."""
    selections = [{"selection_id": "", "event_id": "", "market": ""} for _ in range(300)]
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(with_changes("sports_bet", selections=selections))
    detail = caught.value.detail
    assert len(detail) <= 1024
    assert "\n" not in detail
    assert detail.startswith("sports_bet event: selections[0].selection_id: ")
    assert "more errors" in detail


def test_error_detail_hides_unusual_map_keys() -> None:
    """A custom map key that is not a plain name is shown as `?` in the path."""
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(with_changes("player", custom={"line\nbreak": None}))
    assert caught.value.detail == "player event: custom.?: must be a string, number, boolean, RFC 3339 date-time " + (
        "or list of strings"
    )


def test_decoded_event_round_trips_through_its_json() -> None:
    """An event serialized by its model decodes back to an equal event (exact decimals, UTC times, extras)."""
    for event_type in EVENT_TYPES:
        fields = FULL[event_type]
        # A Decimal in a free-form map is written as a JSON string, which reads back as text: leave those out.
        if event_type == "player":
            fields = {**fields, "custom": {"level": 3, "vip": True, "seen_at": "2024-01-01T00:00:00+01:00"}}
        if event_type == "custom":
            fields = {**fields, "attributes": {"step": 2, "ok": True}}
        event = decode_dict(message(event_type, fields, x_extra="kept"))
        again = decode(event.model_dump_json(exclude_unset=True).encode())
        assert again == event, event_type


def test_events_are_immutable() -> None:
    """Decoded events are frozen, so a connector cannot alter what the next connector sees."""
    event = decode_dict(message("deposit", MINIMAL["deposit"]))
    assert isinstance(event, DepositEvent)
    with pytest.raises(ValidationError):
        event.amount = Decimal(1)  # type: ignore[misc]


def test_models_construct_in_python() -> None:
    """Models build from Python values too, with the type defaulted and times normalized to UTC."""
    event = DepositEvent(
        event_id="e",
        occurred_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        player_id="p",
        transaction_id="t",
        amount=Decimal("1.5"),
        currency="eur",
    )
    assert event.type == "deposit"
    assert event.currency == "EUR"
    with pytest.raises(ValidationError):
        LoginEvent(event_id="e", occurred_at=datetime(2024, 5, 1, 12), player_id="p")


def test_json_schema_describes_every_type() -> None:
    """The JSON Schema is serializable, titled, maps every type, and requires `type` in each variant."""
    schema = json_schema()
    orjson.dumps(schema)
    assert schema["title"]
    assert schema["$id"]
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    definitions = schema["$defs"]
    for event_type, ref in schema["discriminator"]["mapping"].items():
        variant = definitions[ref.rsplit("/", 1)[1]]
        assert variant["properties"]["type"]["const"] == event_type
        assert {"type", "event_id", "occurred_at"} <= set(variant["required"])
        assert variant.get("additionalProperties") is True
    assert "player_id" not in definitions["GameEvent"]["properties"]
    assert "player_id" not in definitions["RevenueEvent"]["required"]
    assert "player_id" in definitions["DepositEvent"]["required"]


def test_schema_describes_every_event_type_with_a_valid_example() -> None:
    """`gateway schema` gives each event type a description and an example, and every example is a valid event."""
    definitions = json_schema()["$defs"]
    documented = {}
    for definition in definitions.values():
        kind = definition.get("properties", {}).get("type", {}).get("const")
        if kind is None:
            continue
        assert len(definition.get("description", "")) > 30, kind
        (example,) = definition["examples"]
        event = decode(orjson.dumps(example))
        assert event.type == kind
        documented[kind] = event
    assert set(documented) == set(EVENT_TYPES)


NATURAL_IDS = [
    ("deposit", "transaction_id"),
    ("deposit", "wallet_id"),
    ("withdrawal", "transaction_id"),
    ("gameround", "round_id"),
    ("gameround", "game_id"),
    ("gameround", "session_id"),
    ("gameround", "transaction_id"),
    ("game", "game_id"),
    ("revenue", "revenue_id"),
    ("wallet", "wallet_id"),
    ("bonus", "assignment_id"),
    ("bonus", "bonus_id"),
    ("sports_bet", "bet_id"),
]


@pytest.mark.parametrize(("event_type", "field"), NATURAL_IDS, ids=[f"{t}.{f}" for t, f in NATURAL_IDS])
def test_natural_ids_are_bounded(event_type: str, field: str) -> None:
    """A natural key of 128 characters is valid; one of 12,000 (a store index cannot hold it) is invalid_event."""
    decode_dict(message(event_type, {**FULL[event_type], field: "i" * MAX_ID_LENGTH}))
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(message(event_type, {**FULL[event_type], field: "i" * 12_000}))
    assert field in error_paths(caught.value.detail)


def test_sports_selection_ids_are_bounded() -> None:
    """A selection's selection_id and event_id are natural keys too."""
    selection = {**FULL["sports_bet"]["selections"][0], "selection_id": "s" * 5000}
    with pytest.raises(InvalidEvent):
        decode_dict(message("sports_bet", {**FULL["sports_bet"], "selections": [selection]}))


@pytest.mark.parametrize(
    ("custom", "says"),
    [
        pytest.param({f"k{i}": i for i in range(MAX_CUSTOM_FIELDS + 1)}, "at most 100", id="too-many-keys"),
        pytest.param({"k" * (MAX_CUSTOM_KEY + 1): 1}, "at most 64", id="key-too-long"),
        pytest.param({"note": "x" * (MAX_CUSTOM_TEXT + 1)}, "at most 1024", id="value-too-long"),
        pytest.param({"tags": ["x"] * 101}, "at most 100 strings", id="list-too-long"),
        pytest.param({"tags": ["x" * 2000]}, "at most 1024", id="list-item-too-long"),
    ],
)
def test_player_custom_fields_are_bounded(custom: dict[str, Any], says: str) -> None:
    """Past the bounds on custom fields, the event is invalid_event with a reason that says which bound."""
    with pytest.raises(InvalidEvent) as caught:
        decode_dict(message("player", {"custom": custom}))
    assert says in caught.value.detail


def test_player_custom_fields_at_the_bounds_are_valid() -> None:
    """100 keys of 64 characters with 1024-character values are accepted."""
    custom = {f"{i:03d}".ljust(MAX_CUSTOM_KEY, "k"): "v" * MAX_CUSTOM_TEXT for i in range(MAX_CUSTOM_FIELDS)}
    event = decode_dict(message("player", {"custom": custom}))
    assert isinstance(event, PlayerEvent)
    assert len(event.custom or {}) == MAX_CUSTOM_FIELDS
