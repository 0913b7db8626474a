"""Pure mapping from normalized events to Enable3 request bodies: mission events, revenue and segment changes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.enable3.config import (
    CURRENCY,
    DATE,
    REQUEST_ID,
    SEGMENT,
    SEGMENTS,
    USER_ID,
    Enable3Options,
    mentions,
)
from connectors.enable3.config import (
    REVENUE as REVENUE_AMOUNT,
)
from gateway.connector import MapDispatch, VendorRecord, record_body
from gateway.errors import MappingError, UnsupportedCurrency
from gateway.event_fields import clock_text
from gateway.events import (
    CustomEvent,
    DepositEvent,
    Event,
    GameRoundEvent,
    LoginEvent,
    RevenueEvent,
    SegmentEvent,
    WithdrawalEvent,
)

# Routes: which Enable3 endpoint a record is for (the client's ENDPOINTS table).
EVENT = "event"
REVENUE = "revenue"
SEGMENT_ADD = "segment_add"
SEGMENT_REMOVE = "segment_remove"
REVENUE_CURRENCY = "USDT"  # Enable3's revenue endpoint takes USDT only; the gateway never converts
REVENUE_KEY = "operator-revenue"  # operator-level revenue has no player: one ordering key for all of it
_SEGMENT_ROUTES = {"add": SEGMENT_ADD, "remove": SEGMENT_REMOVE}


def created_at(moment: datetime) -> str:
    """Enable3's timestamp: UTC as `YYYY-MM-DD HH:MM:SS` (the contract makes every datetime UTC-aware)."""
    return clock_text(moment).replace("T", " ", 1)


def number(value: Decimal) -> float:
    """A JSON number for `value`/`revenue`; a float's shortest repr keeps up to 15 significant digits exact."""
    result = float(value)
    if not math.isfinite(result):
        raise MappingError(f"value {value} is not a finite number")
    return result


def _mission(
    event: Event, default_event_id: str, value: Decimal, tags: Sequence[str], options: Enable3Options
) -> Sequence[VendorRecord]:
    """One `POST /api/v1/event` record; none when the operator switched this eventId off (renamed to null)."""
    event_id = options.event_ids.get(default_event_id, default_event_id)
    if event_id is None:
        return ()
    assert event.player_id is not None  # mission events are player-scoped types
    body = {
        "id": event.event_id,
        "userId": event.player_id,
        "eventId": event_id,
        "eventTags": list(tags),
        "value": number(value),
        "createdAt": created_at(event.occurred_at),
    }
    return (VendorRecord(EVENT, record_body(body), event.player_id, event.event_id),)


def _status_allowed(kind: str, status: str, options: Enable3Options) -> bool:
    allowed = options.statuses.get(kind)
    return allowed is None or status in allowed


def _payment(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, DepositEvent | WithdrawalEvent)
    if not _status_allowed(event.type, event.status, options):
        return ()
    return _mission(event, event.type, event.amount, (), options)


def _gameround(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, GameRoundEvent)
    return _mission(event, event.kind, event.amount, (), options)


def _login(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, LoginEvent)
    if not _status_allowed("login", "success" if event.success else "failed", options):
        return ()
    return _mission(event, "login", Decimal(1), (), options)


def _custom(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, CustomEvent)
    return _mission(event, event.name, event.value, event.tags, options)


def _revenue(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, RevenueEvent)
    if event.player_id is not None and not options.player_revenue:
        return ()  # Enable3's revenue is operator-level; player revenue is not taken unless the operator says so
    if event.currency != REVENUE_CURRENCY:
        raise UnsupportedCurrency(
            f"Enable3 takes revenue in {REVENUE_CURRENCY} only; got {event.currency} (the gateway never converts)"
        )
    refund = event.kind == "refund"
    values: dict[str, Any] = {
        REQUEST_ID: refund_request_id(event) if refund else event.revenue_id,
        REVENUE_AMOUNT: number(-abs(event.amount) if refund else event.amount),
        DATE: created_at(event.occurred_at),
        CURRENCY: event.currency,
    }
    body = _replace(options.revenue_template, values)
    return (VendorRecord(REVENUE, record_body(body), REVENUE_KEY, event.event_id),)


def refund_request_id(event: RevenueEvent) -> str:
    """A refund's `requestId`: one of its own, derived from its event. Under the purchase's id Enable3 would answer
    409 (duplicate entry) and the refund would be lost; under a key of its own it always subtracts, once."""
    return f"{event.revenue_id}:refund:{event.event_id}"


def _replace(template: Any, values: dict[str, Any]) -> Any:
    """A JSON template with every string that is exactly a placeholder replaced by its value."""
    if isinstance(template, str):
        return values.get(template, template)
    if isinstance(template, dict):
        return {key: _replace(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_replace(value, values) for value in template]
    return template


def fill_template(template: Any, user_id: str, segments: Sequence[str]) -> Any:
    """The segment body: placeholders replaced; a one-element list holding {segment} repeats once per segment."""
    if isinstance(template, list) and len(template) == 1 and mentions(template[0], SEGMENT):
        return [_fill(template[0], user_id, segments, segment) for segment in segments]
    return _fill(template, user_id, segments, None)


def _fill(template: Any, user_id: str, segments: Sequence[str], segment: str | None) -> Any:
    if isinstance(template, str):
        values: dict[str, Any] = {USER_ID: user_id, SEGMENTS: list(segments)}
        if segment is not None:
            values[SEGMENT] = segment
        return values.get(template, template)
    if isinstance(template, dict):
        return {key: _fill(value, user_id, segments, segment) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, user_id, segments, segment) for value in template]
    return template


def _segment(event: Event, options: Enable3Options) -> Sequence[VendorRecord]:
    assert isinstance(event, SegmentEvent)
    body = fill_template(options.segment_template, event.player_id, event.segments)
    route = _SEGMENT_ROUTES[event.action]
    return (VendorRecord(route, record_body(body), event.player_id, event.event_id),)


# The Enable3 requests for one event (at most one); empty when Enable3 does not take it.
map_event: MapDispatch[Enable3Options] = MapDispatch(
    {
        "deposit": _payment,
        "withdrawal": _payment,
        "gameround": _gameround,
        "login": _login,
        "custom": _custom,
        "revenue": _revenue,
        "segment": _segment,
    }
)
