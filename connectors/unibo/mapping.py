"""Pure mapping from normalized events to Unibo items (`{"event": ..., "data": {...}}`), validated locally."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from connectors.unibo.config import UniboOptions
from gateway.connector import MapDispatch, VendorRecord, record_body
from gateway.errors import MappingError, UnsupportedCurrency
from gateway.events import (
    DepositEvent,
    Event,
    GameEvent,
    GameRoundEvent,
    LoginEvent,
    PlayerEvent,
    WithdrawalEvent,
)
from gateway.iso4217 import is_iso4217

ROUTE = "events"
# Datetimes go into items as they are: the contract makes them UTC and record_body writes them as ISO 8601 with a Z,
# with microseconds only when present, as Unibo's examples show.
_GENDER = {"male": "M", "female": "F"}
_FREESPINS = {True: "yes", False: "no"}

# player profile field → Unibo `player` field; only these leave the gateway (no PII: no names, email, phone, birthday).
PLAYER_FIELDS: dict[str, str] = {
    "registered_at": "registration_date",
    "country": "country",
    "currency": "currency",
    "gender": "gender",
    "affiliate": "affiliate",
    "tags": "tags",
    "consent_email": "consent_email",
    "is_blocked": "is_blocked",
}

# game catalog field → Unibo `game` field
GAME_FIELDS: dict[str, str] = {
    "name": "name",
    "provider": "provider",
    "categories": "categories",
    "features": "features",
    "themes": "themes",
    "device": "device",
}


def amount(value: Decimal) -> float:
    """Unibo takes a JSON number. A float's shortest repr keeps up to 15 significant digits exact."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise MappingError(f"amount {value} is not a finite non-negative number")
    return number


def currency(code: str, options: UniboOptions) -> str:
    """The ISO-4217 code Unibo asks for: the event's, or the operator's `currency_map` entry for it. Anything else
    (a crypto ticker nobody mapped) is refused as `unsupported_currency`: the gateway never converts amounts."""
    sent = options.currency_map.get(code, code)
    if not is_iso4217(sent):
        raise UnsupportedCurrency(
            f"Unibo takes ISO-4217 currencies only; got {code} (map it with options.currency_map, e.g. {{USDT: USD}})"
        )
    return sent


def _record(kind: str, data: dict[str, Any], key: str) -> VendorRecord:
    return VendorRecord(ROUTE, record_body({"event": kind, "data": data}), key, data["unique_id"])


def _payment(kind: str, event: DepositEvent | WithdrawalEvent, options: UniboOptions) -> Sequence[VendorRecord]:
    if event.status != "success":
        return ()  # Unibo takes deposits and withdrawals only once they succeed
    data: dict[str, Any] = {
        "unique_id": event.event_id,
        "timestamp": event.occurred_at,
        "player_id": event.player_id,
        "amount": amount(event.amount),
        "currency": currency(event.currency, options),
        "method": event.method or options.default_method,
    }
    if isinstance(event, DepositEvent) and event.amount_eur is not None:
        data["amount_eur"] = amount(event.amount_eur)
    return (_record(kind, data, event.player_id),)


def _deposit(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, DepositEvent)
    return _payment("deposit", event, options)


def _withdrawal(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, WithdrawalEvent)
    return _payment("withdraw", event, options)


def _gameround(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, GameRoundEvent)
    stake = event.amount
    if stake == 0:
        return ()  # Unibo asks for a positive amount: a zero bet stakes nothing, a zero win is the loss Unibo infers
    player = event.player_id
    data = {
        "unique_id": event.event_id,
        "timestamp": event.occurred_at,
        "player_id": player,
        "game_id": event.game_id,
        "round_id": event.round_id,
        "amount": float(stake),  # what amount() checks holds: the contract bounds it to DECIMAL(38,18) and >= 0
        "currency": currency(event.currency, options),
        "is_win": event.kind == "win",
        "is_bonus": event.is_bonus,
    }
    return (_record("gameround", data, player),)


def _login(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, LoginEvent)
    if not event.success:
        return ()  # a failed login is not a login for raffles
    data = {"unique_id": event.event_id, "timestamp": event.occurred_at, "player_id": event.player_id}
    return (_record("login", data, event.player_id),)


def _convert(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "gender":
        return _GENDER.get(value)
    if field == "tags":
        return list(value)
    return value


def _player_currency(code: str | None, options: UniboOptions) -> str | None:
    """A player's main currency: mapped like the money items' when the operator maps it, else as it is (Unibo's
    document asks ISO-4217 of gameround, deposit and withdraw items only; player `currency` is a free string)."""
    return options.currency_map.get(code, code) if code is not None else None


def _player(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, PlayerEvent)
    changes = event.changes()
    data: dict[str, Any] = {
        "unique_id": event.event_id,
        "timestamp": event.occurred_at,
        "player_id": event.player_id,
    }
    # Partial update: a field absent from the event is absent from the item; an explicit null is sent as null.
    for field, target in PLAYER_FIELDS.items():
        if field == "currency" and field in changes:
            data[target] = _player_currency(changes[field], options)
        elif field in changes:
            data[target] = _convert(field, changes[field])
    if options.send_username and "username" in changes:
        username = changes["username"]
        if username is None or "@" not in username:
            data["username"] = username
    if options.operator is not None:
        data["operator"] = options.operator
    return (_record("player", data, event.player_id),)


def _game(event: Event, options: UniboOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, GameEvent)
    data: dict[str, Any] = {
        "unique_id": event.event_id,
        "timestamp": event.occurred_at,
        "game_id": event.game_id,
    }
    for field, target in GAME_FIELDS.items():
        value = getattr(event, field)
        if value is not None:
            data[target] = list(value) if isinstance(value, list | tuple) else value
    if "has_freespins" in event.model_fields_set:
        data["has_freespins"] = _FREESPINS.get(event.has_freespins, "unknown")  # type: ignore[arg-type]
    return (_record("game", data, event.game_id),)


# The Unibo items for one event; empty when Unibo does not take it (other types, unsuccessful payments).
map_event: MapDispatch[UniboOptions] = MapDispatch(
    {
        "deposit": _deposit,
        "withdrawal": _withdrawal,
        "gameround": _gameround,
        "login": _login,
        "player": _player,
        "game": _game,
    }
)
