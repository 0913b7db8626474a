"""Pure mapping: one normalized event → the feed-store row changes it makes (route = table, body = the row's fields).

Bodies use the seed's column names and store-ready values: times as `YYYY-MM-DD HH:MM:SS` (UTC), decimals as exact
text, booleans as 1/0. The modification column is absent: the store stamps it with its own time when it commits.
Partial `player` rows carry only the fields the event carried (an explicit null clears).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from connectors.intarget.config import IntargetOptions
from gateway.connector import MapDispatch, VendorRecord, record_body
from gateway.events import (
    BonusEvent,
    DepositEvent,
    Event,
    GameEvent,
    GameRoundEvent,
    LoginEvent,
    PlayerEvent,
    SportsBetEvent,
    WalletEvent,
    WithdrawalEvent,
)

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
TRANSACTION_TYPES: Final = {"real": "Normal", "bonus": "Prize"}
TRANSACTION_STATUSES: Final = {"success": "Success", "pending": "Process", "failed": "Fail", "cancelled": "Fail"}
BALANCE_TYPES: Final = {"real": "Normal", "bonus": "Prize"}
SEED_BALANCE_TYPES: Final = {name.lower(): name for name in ("Normal", "Prize", "Compensation", "Cashback", "Fake")}

# Player profile fields → (feed, column). Fields not listed (username, currency, affiliate) have no InTarget column.
PLAYER_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "first_name": ("players", "first_name"),
    "last_name": ("players", "last_name"),
    "gender": ("players", "gender"),
    "country": ("players", "country"),
    "city": ("players", "city"),
    "ip": ("players", "ip"),
    "locale": ("players", "locale"),
    "timezone": ("players", "timezone"),
    "birthday": ("players", "birthday"),
    "registered_at": ("players", "registered_at"),
    "ref_code": ("players", "ref_code"),
    "traffic_source": ("players", "traffic_source"),
    "user_agent": ("players", "user_agent"),
    "is_blocked": ("players", "is_blocked"),
    "status": ("players", "status"),
    "self_excluded": ("players", "self_excluded"),
    "email": ("contacts", "email"),
    "email_confirmed_at": ("contacts", "email_confirmed_at"),
    "consent_email": ("contacts", "email_subscribe"),
    "phone": ("contacts", "phone"),
    "consent_sms": ("contacts", "phone_subscribe"),
    "phone_confirmed_at": ("contacts", "phone_confirmed_at"),
    "push_token": ("contacts", "push_token"),
    "auto_login_token": ("auto_logins", "login_token"),
}


def store_time(value: datetime | None) -> str | None:
    """A UTC datetime as the feeds write it."""
    return value.strftime(TIME_FORMAT) if value is not None else None


def store_decimal(value: Decimal | None) -> str | None:
    """An exact decimal as plain text (never exponent notation)."""
    return format(value, "f") if value is not None else None


def _scalar(value: Any) -> Any:
    """A profile value as stored: times formatted, dates ISO, booleans 1/0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return store_time(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def custom_value(value: Any) -> list[str] | None:  # noqa: PLR0911 - one return per custom value kind
    """A custom field as [kind, text]: kind is int, decimal (2 places), bool, datetime, array or string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["bool", "1" if value else "0"]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, Decimal):
        try:
            return ["decimal", format(value.quantize(Decimal("0.01")), "f")]
        except InvalidOperation:
            return ["decimal", format(value, "f")]
    if isinstance(value, datetime):
        return ["datetime", value.strftime(TIME_FORMAT)]
    if isinstance(value, list):
        return ["array", ", ".join(str(item) for item in value)]
    return ["string", str(value)]


def _record(event: Event, route: str, index: int, key: str, row: dict[str, Any]) -> VendorRecord:
    row["brand"] = event.brand
    return VendorRecord(route, record_body(row), key, f"{event.event_id}/{route}/{index}")


def _player(event: PlayerEvent, options: IntargetOptions) -> list[VendorRecord]:
    changes = event.changes()
    seen = store_time(event.occurred_at)
    # `registered_default`: what the store writes as registered_at when it inserts a player no event gave one.
    default = seen if options.registered_at == "first_seen" else None
    rows: dict[str, dict[str, Any]] = {
        "players": {"id": event.player_id, "seen_at": seen, "registered_default": default}
    }
    for field, value in changes.items():
        target = PLAYER_COLUMNS.get(field)
        if target is None:
            continue
        feed, column = target
        if field == "registered_at" and value is None:
            continue  # required by the feed: a null cannot clear it
        rows.setdefault(feed, {"player_id": event.player_id, "seen_at": seen})[column] = _scalar(value)
    custom: dict[str, list[str] | None] = {}
    if "tags" in changes:
        custom["tags"] = custom_value(changes["tags"])
    for name, value in (changes.get("custom") or {}).items():
        custom[name] = custom_value(value)
    if custom:
        rows["players"]["custom"] = custom
    return [_record(event, feed, index, event.player_id, row) for index, (feed, row) in enumerate(rows.items())]


def _money(event: DepositEvent | WithdrawalEvent, options: IntargetOptions) -> list[VendorRecord]:
    row = {
        "id": event.transaction_id,
        "player_id": event.player_id,
        "amount": store_decimal(event.amount),
        "currency": event.currency,
        "type": TRANSACTION_TYPES[event.money_type],
        "status": TRANSACTION_STATUSES[event.status],
        "payment_system": event.method,
        "dir": "IN" if event.type == "deposit" else "OUT",
        "ref_code": event.ref_code,
        "created_at": store_time(event.occurred_at),
        "wallet_id": event.wallet_id,
        "requisite": event.requisite,
        "comment": event.comment,
    }
    return [_record(event, "transactions", 0, event.player_id, row)]


def _login(event: LoginEvent, options: IntargetOptions) -> list[VendorRecord]:
    row = {
        "id": event.event_id,
        "player_id": event.player_id,
        "ip": event.ip,
        "created_at": store_time(event.occurred_at),
        "ref_code": event.ref_code,
        "traffic_source": event.traffic_source,
        "user_agent": event.user_agent,
        "host": event.host,
        "is_success": int(event.success),
    }
    return [_record(event, "logins", 0, event.player_id, row)]


def _wallet(event: WalletEvent, options: IntargetOptions) -> list[VendorRecord]:
    kind = event.wallet_type.lower()
    row = {
        "id": event.wallet_id,
        "player_id": event.player_id,
        "type": BALANCE_TYPES.get(kind) or SEED_BALANCE_TYPES.get(kind, "Other"),
        "balance": store_decimal(event.balance),
        "currency": event.currency,
        "created_at": store_time(event.occurred_at),
    }
    return [_record(event, "wallets", 0, event.player_id, row)]


def _bonus(event: BonusEvent, options: IntargetOptions) -> list[VendorRecord]:
    seen = store_time(event.occurred_at)
    assignment = {
        "id": event.assignment_id,
        "player_id": event.player_id,
        "bonus_id": event.bonus_id,
        "end_date": store_time(event.end_date),
        "created_at": seen,
        "active": int(event.status == "active"),
        "used": int(event.status == "used"),
    }
    bonus = {"id": event.bonus_id, "name": event.bonus_name, "created_at": seen}
    return [
        _record(event, "bonuses", 0, event.player_id, bonus),
        _record(event, "bonus_assignments", 1, event.player_id, assignment),
    ]


def _gameround(event: GameRoundEvent, options: IntargetOptions) -> list[VendorRecord]:
    action = {
        "id": event.event_id,
        "session_id": event.session_id,
        "player_id": event.player_id,
        "game_code": event.game_id,
        "game_name": event.game_name,
        "default_game_name": options.default_game_name,
        "currency": event.currency,
        "kind": event.kind,
        "amount": store_decimal(event.amount),
        "at": store_time(event.occurred_at),
        "game_vendor": event.game_vendor,
        "balance_type": "Prize" if event.is_bonus else "Normal",
        "ip": event.ip,
        "user_agent": event.user_agent,
    }
    return [_record(event, "casino_actions", 0, event.player_id, action)]


def _game(event: GameEvent, options: IntargetOptions) -> list[VendorRecord]:
    if event.name is None:
        return []
    return [_record(event, "games", 0, event.game_id, {"id": event.game_id, "name": event.name})]


def _sports_bet(event: SportsBetEvent, options: IntargetOptions) -> list[VendorRecord]:
    seen = store_time(event.occurred_at)
    key = event.player_id
    bet = {
        "id": event.bet_id,
        "player_id": event.player_id,
        "status": event.status,
        "type": event.bet_type,
        "stake": store_decimal(event.stake),
        "win_amount": store_decimal(event.win_amount),
        "currency": event.currency,
        "ref_code": event.ref_code,
        "created_at": seen,
    }
    records = [_record(event, "sports_bets", 0, key, bet)]
    for selection in event.selections:
        if selection.tournament_id is not None:
            tournament = {
                "id": selection.tournament_id,
                "name": selection.tournament_name,
                "sport_id": selection.sport_id,
                "sport_name": selection.sport_name,
                "country_code": selection.country_code,
                "start_date": store_time(selection.tournament_start),
                "end_date": store_time(selection.tournament_end),
            }
            records.append(_record(event, "sports_tournaments", len(records), key, tournament))
        sport_event = {
            "id": selection.event_id,
            "tournament_id": selection.tournament_id,
            "title": selection.event_title,
            "status": selection.event_status,
            "start_date": store_time(selection.event_start),
            "type": selection.event_type,
        }
        records.append(_record(event, "sports_events", len(records), key, sport_event))
        odd = {
            "id": selection.selection_id,
            "bet_id": event.bet_id,
            "event_id": selection.event_id,
            "ratio": store_decimal(selection.ratio),
            "status": selection.status,
            "market": selection.market,
            "created_at": seen,
        }
        records.append(_record(event, "sports_odds", len(records), key, odd))
    return records


# Each mapper takes its own event class (the dispatch is by `type`, so a mapper sees only its class).
_MAPPERS: Final[dict[str, Callable[[Any, IntargetOptions], list[VendorRecord]]]] = {
    "player": _player,
    "deposit": _money,
    "withdrawal": _money,
    "login": _login,
    "wallet": _wallet,
    "bonus": _bonus,
    "gameround": _gameround,
    "game": _game,
    "sports_bet": _sports_bet,
}

# The store changes one event makes; empty for types no feed takes (custom, revenue, segment).
map_event: MapDispatch[IntargetOptions] = MapDispatch(_MAPPERS)
