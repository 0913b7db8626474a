"""Validation of Unibo `POST /api/v1/events` items as the Unibo reference documents them, in plain Python for speed.

Errors use the FastAPI/pydantic shape `{"loc": [...], "msg": "...", "type": "..."}`; Unibo publishes no 422 body, so
this is the sandbox's own (most plausible) choice.  Deliberately stricter than a lenient server where the doc is silent:
unknown fields are rejected everywhere (this catches mapping bugs and PII leaking into `player`), strings must be
non-empty, and timestamps need an explicit UTC zone.  As the document says: a gameround amount is a positive number
("Bet/Win amount in a positive float format"), deposit and withdraw amounts are numbers (accepted from 0), and the
currency of gameround, deposit and withdraw items is an ISO-4217 code (crypto tickers refused); a player's
`currency` is only a string there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.iso4217 import is_iso4217

ErrorDetail = dict[str, Any]
# A check returns None when the value is valid, else (error type, message).
Check = Callable[[Any], tuple[str, str] | None]

EVENT_TYPES = ("gameround", "deposit", "withdraw", "player", "game", "login")
# Only used to explain a rejected timestamp; group 1 is the zone.
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATETIME_SHAPE_ERROR = ("datetime_parsing", "Input should be an ISO 8601 date-time, e.g. 2025-01-15T12:00:00Z")


def _string(value: Any) -> tuple[str, str] | None:
    if type(value) is not str:
        return ("string_type", "Input should be a valid string")
    if not value:
        return ("string_too_short", "String should have at least 1 character")
    return None


def _amount(value: Any) -> tuple[str, str] | None:
    if type(value) is not float and type(value) is not int:  # bool is a subclass of int: excluded on purpose
        return ("float_type", "Input should be a valid number")
    if value < 0:
        return ("greater_than_equal", "Input should be greater than or equal to 0")
    return None


def _positive_amount(value: Any) -> tuple[str, str] | None:
    problem = _amount(value)
    if problem is None and value == 0:
        return ("greater_than", "Input should be greater than 0")
    return problem


def _bool(value: Any) -> tuple[str, str] | None:
    return None if type(value) is bool else ("bool_type", "Input should be a valid boolean")


def _currency(value: Any) -> tuple[str, str] | None:
    if type(value) is not str:
        return ("string_type", "Input should be a valid string")
    if not is_iso4217(value):
        return ("string_pattern_mismatch", "Input should be an ISO-4217 currency code")
    return None


def _datetime(value: Any) -> tuple[str, str] | None:
    if type(value) is not str:
        return ("datetime_type", "Input should be a valid datetime string")
    # Fast path for the valid case (a regex costs more than the parse): separators by position, then a real parse.
    if value[-1:] == "Z":
        end = len(value) - 1
    elif value[-6:] == "+00:00":
        end = len(value) - 6
    else:
        return _datetime_zone_error(value)
    if end < 19 or value[4:17:3] != "--T::":
        return _DATETIME_SHAPE_ERROR
    if end > 19:  # fromisoformat alone would accept "12:00:00,5", "12:00:00 Z" or "12:00:00.1234567x"
        fraction = value[20:end]
        if value[19] != "." or not (fraction.isdigit() and fraction.isascii()):
            return _DATETIME_SHAPE_ERROR
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        return ("datetime_parsing", f"Input should be a valid datetime, {exc}")
    return None


def _datetime_zone_error(value: str) -> tuple[str, str]:
    match = _DATETIME_RE.fullmatch(value)
    if match is None:
        return _DATETIME_SHAPE_ERROR
    if match.group(1) is None:
        return ("timezone_aware", "Input should have timezone info (Z or +00:00)")
    return ("value_error", "Input should be in UTC (Z or +00:00)")


def _string_list(value: Any) -> tuple[str, str] | None:
    if type(value) is not list:
        return ("list_type", "Input should be a valid list of strings")
    for element in value:
        if type(element) is not str or not element:
            return ("string_type", "List elements should be non-empty strings")
    return None


def _choice(*allowed: str) -> Check:
    names = frozenset(allowed)
    message = "Input should be " + " or ".join(repr(a) for a in allowed) + " or null"

    def check(value: Any) -> tuple[str, str] | None:
        return None if type(value) is str and value in names else ("literal_error", message)

    return check


def _nullable(check: Check) -> Check:
    def nullable(value: Any) -> tuple[str, str] | None:
        return None if value is None else check(value)

    return nullable


_COMMON: dict[str, Check] = {"unique_id": _string, "timestamp": _datetime}
_MONEY: dict[str, Check] = {"player_id": _string, "amount": _amount, "currency": _currency, "method": _string}
_OPTIONAL_STRING = _nullable(_string)
_OPTIONAL_LIST = _nullable(_string_list)

# event -> (field -> check, required fields); fields not listed are rejected.
SPECS: dict[str, tuple[dict[str, Check], frozenset[str]]] = {}


def _spec(event: str, checks: dict[str, Check], *optional: str) -> None:
    SPECS[event] = ({**_COMMON, **checks}, frozenset(_COMMON) | frozenset(checks) - frozenset(optional))


_spec(
    "gameround",
    {"player_id": _string, "game_id": _string, "round_id": _string, "amount": _positive_amount, "currency": _currency}
    | {"is_win": _bool, "is_bonus": _bool},
)
_spec("deposit", {**_MONEY, "amount_eur": _nullable(_amount)}, "amount_eur")
_spec("withdraw", _MONEY)
_PLAYER_OPTIONAL: dict[str, Check] = {
    "username": _OPTIONAL_STRING,
    "registration_date": _nullable(_datetime),
    "country": _OPTIONAL_STRING,
    "currency": _OPTIONAL_STRING,
    "gender": _nullable(_choice("M", "F")),
    "affiliate": _OPTIONAL_STRING,
    "operator": _OPTIONAL_STRING,
    "tags": _OPTIONAL_LIST,
    "consent_email": _nullable(_bool),
    "is_blocked": _nullable(_bool),
}
_spec("player", {"player_id": _string, **_PLAYER_OPTIONAL}, *_PLAYER_OPTIONAL)
_GAME_OPTIONAL: dict[str, Check] = {
    "name": _OPTIONAL_STRING,
    "provider": _OPTIONAL_STRING,
    "categories": _OPTIONAL_LIST,
    "features": _OPTIONAL_LIST,
    "themes": _OPTIONAL_LIST,
    "device": _OPTIONAL_STRING,
    "has_freespins": _nullable(_choice("yes", "no", "unknown")),
}
_spec("game", {"game_id": _string, **_GAME_OPTIONAL}, *_GAME_OPTIONAL)
_spec("login", {"player_id": _string})

_ITEM_KEYS = frozenset({"event", "data"})
_EXTRA_MESSAGE = "Extra inputs are not permitted"
# Not in Unibo's schema (so rejected anyway); named so the message says why a mapping must never send them.
_PII_FIELDS = frozenset(
    {"email", "phone", "first_name", "last_name", "birthday", "birth_date", "date_of_birth", "address", "city", "ip"}
)
_PII_MESSAGE = "Extra inputs are not permitted (personal data must never be sent to Unibo)"
_EVENT_MESSAGE = "Input should be " + ", ".join(repr(e) for e in EVENT_TYPES)


def error_detail(loc: list[Any], kind: str, msg: str) -> ErrorDetail:
    """One FastAPI-style error entry."""
    return {"loc": loc, "msg": msg, "type": kind}


def validate_items(items: list[Any]) -> list[ErrorDetail]:
    """Every problem in `items` (an already-parsed JSON array); an empty list means the whole batch is valid."""
    errors: list[ErrorDetail] = []
    specs = SPECS
    for index, item in enumerate(items):
        if type(item) is not dict:
            errors.append(error_detail(["items", index], "model_type", "Input should be an object"))
            continue
        if item.keys() != _ITEM_KEYS:
            errors.extend(_item_key_errors(index, item))
        event = item.get("event")
        spec = specs.get(event) if type(event) is str else None
        data = item.get("data")
        if spec is None:
            if "event" in item:  # a missing "event" was reported with the item's keys
                errors.append(error_detail(["items", index, "event"], "literal_error", _EVENT_MESSAGE))
        elif type(data) is dict:
            _check_data(index, data, spec, errors)
        elif "data" in item:
            errors.append(error_detail(["items", index, "data"], "model_type", "Input should be an object"))
    return errors


def _check_data(
    index: int, data: dict[str, Any], spec: tuple[dict[str, Check], frozenset[str]], errors: list[ErrorDetail]
) -> None:
    checks, required = spec
    for name, value in data.items():
        check = checks.get(name)
        if check is _string:
            if type(value) is str and value:
                continue  # inlined: most fields are strings, and a call per field is the main cost
        elif check is None:
            message = _PII_MESSAGE if name in _PII_FIELDS else _EXTRA_MESSAGE
            errors.append(error_detail(["items", index, "data", name], "extra_forbidden", message))
            continue
        problem = check(value)
        if problem is not None:
            errors.append(error_detail(["items", index, "data", name], *problem))
    if not data.keys() >= required:
        for name in sorted(required - data.keys()):
            errors.append(error_detail(["items", index, "data", name], "missing", "Field required"))


def _item_key_errors(index: int, item: dict[str, Any]) -> list[ErrorDetail]:
    found = [
        error_detail(["items", index, key], "missing", "Field required") for key in ("event", "data") if key not in item
    ]
    for key in item.keys() - _ITEM_KEYS:
        found.append(error_detail(["items", index, key], "extra_forbidden", _EXTRA_MESSAGE))
    return found


__all__ = ["EVENT_TYPES", "SPECS", "ErrorDetail", "error_detail", "validate_items"]
