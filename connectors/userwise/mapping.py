"""Pure mapping from normalized events to UserWise items, one route per endpoint, keyed by player for ordering.

Every record's `key` is the player id: it is both the lane key (so one player's events, revenue events and attribute
upserts reach UserWise in source order) and the `appuser_external_id` the client puts in the URL.
Record bodies: an `events[]` item, a `revenue_events[]` item, or a JSON array of `attributes[]` items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.userwise.attributes import FIELD_TYPES, Attribute, AttributeStyle, attribute, number, style_of
from connectors.userwise.config import CUSTOM_PREFIX, UserWiseOptions
from gateway.connector import MapDispatch, VendorRecord, record_body
from gateway.errors import MappingError
from gateway.events import (
    CustomEvent,
    DepositEvent,
    Event,
    GameRoundEvent,
    LoginEvent,
    PlayerEvent,
    RevenueEvent,
    WithdrawalEvent,
)
from gateway.http_client import UNADDRESSABLE_SEGMENTS

EVENTS = "events"
REVENUE_EVENTS = "revenue_events"
ATTRIBUTES = "attributes"
ROUTES = (EVENTS, REVENUE_EVENTS, ATTRIBUTES)

# The attributes every event and revenue event carries: UserWise has no event-instance id and no timestamp field.
EVENT_UID = "event_uid"
OCCURRED_AT = "occurred_at"
LAST_LOGIN = "last_login"


def _player(event: Event) -> str:
    player_id = event.player_id
    if player_id is None:  # pragma: no cover - every type mapped here requires player_id
        raise MappingError("event has no player_id")
    if player_id in UNADDRESSABLE_SEGMENTS:
        raise MappingError(f"player_id {player_id!r} cannot be addressed in a UserWise URL path")
    return player_id


def _identity(event: Event, style: AttributeStyle) -> list[Attribute]:
    return [
        attribute(EVENT_UID, event.event_id, style, "string"),
        attribute(OCCURRED_AT, event.occurred_at, style, "datetime"),
    ]


def _event_record(event: Event, name: str, extra: list[Attribute], style: AttributeStyle) -> VendorRecord:
    item = {"event_id": name, "attributes": _identity(event, style) + extra}
    return VendorRecord(EVENTS, record_body(item), _player(event), event.event_id)


def _payment(event: DepositEvent | WithdrawalEvent, style: AttributeStyle) -> list[Attribute]:
    extra = [
        attribute("amount", event.amount, style, "float"),
        attribute("currency", event.currency, style, "string"),
        attribute("transaction_id", event.transaction_id, style, "string"),
    ]
    if event.method is not None:
        extra.append(attribute("method", event.method, style, "string"))
    return extra


def _deposit(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, DepositEvent)
    if event.status != "success":
        return ()  # only money that arrived is revenue or a deposit
    style = style_of(options)
    records: list[VendorRecord] = []
    if options.deposit_revenue:
        item = {
            "revenue": number(event.amount),
            "transaction_id": event.transaction_id,  # UserWise upserts by it: a re-send updates, never duplicates
            "revenue_type": options.revenue_types["deposit"],
            "attributes": [*_identity(event, style), attribute("currency", event.currency, style, "string")],
        }
        records.append(VendorRecord(REVENUE_EVENTS, record_body(item), _player(event), event.transaction_id))
    name = options.event_names["deposit"]
    if name is not None:
        records.append(_event_record(event, name, _payment(event, style), style))
    return records


def _withdrawal(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, WithdrawalEvent)
    name = options.event_names["withdrawal"]
    if event.status != "success" or name is None:
        return ()
    style = style_of(options)
    return (_event_record(event, name, _payment(event, style), style),)


def _gameround(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, GameRoundEvent)
    name = options.event_names[event.kind]
    if name is None:
        return ()
    style = style_of(options)
    extra = [
        attribute("amount", event.amount, style, "float"),
        attribute("currency", event.currency, style, "string"),
        attribute("game_id", event.game_id, style, "string"),
        attribute("round_id", event.round_id, style, "string"),
        attribute("is_bonus", event.is_bonus, style, "boolean"),
    ]
    return (_event_record(event, name, extra, style),)


def _login(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, LoginEvent)
    if not event.success:
        return ()  # a failed attempt is neither a login nor a last login
    style = style_of(options)
    records: list[VendorRecord] = []
    name = options.event_names["login"]
    if name is not None:
        records.append(_event_record(event, name, [], style))
    if options.last_login:
        attributes = [attribute(LAST_LOGIN, event.occurred_at, style, "datetime")]
        records.append(
            VendorRecord(ATTRIBUTES, record_body(attributes), _player(event), f"{event.event_id}/{LAST_LOGIN}")
        )
    return records


def _custom_attributes(
    custom: dict[str, Any] | None, options: UserWiseOptions, style: AttributeStyle
) -> list[Attribute]:
    if not custom:
        return []
    every = f"{CUSTOM_PREFIX}*" in options.profile_fields
    return [
        attribute(name, value, style)
        for name, value in custom.items()
        if every or f"{CUSTOM_PREFIX}{name}" in options.profile_fields
    ]


def _profile(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, PlayerEvent)
    style = style_of(options)
    changes = event.changes()
    attributes: list[Attribute] = []
    # Partial update: only the fields this message carried; an explicit null upserts null (or is left out).
    for field in options.profile_fields:
        if field in changes and (changes[field] is not None or options.send_nulls):
            attributes.append(attribute(field, changes[field], style, FIELD_TYPES.get(field, "string")))
    attributes.extend(_custom_attributes(changes.get("custom"), options, style))
    if not attributes:
        return ()
    return (VendorRecord(ATTRIBUTES, record_body(attributes), _player(event), event.event_id),)


def _custom(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, CustomEvent)
    style = style_of(options)
    extra = [attribute("value", event.value, style, "float")]
    if event.tags:
        extra.append(attribute("tags", event.tags, style, "string"))
    reserved = {EVENT_UID, OCCURRED_AT, "value", "tags"}
    extra.extend(attribute(name, value, style) for name, value in event.attributes.items() if name not in reserved)
    return (_event_record(event, event.name, extra, style),)


def refund_transaction_id(event: RevenueEvent) -> str:
    """The `transaction_id` of a refund: one of its own, derived from the refund's event.

    UserWise documents two correct refunds: under the purchase's own transaction_id with revenue 0, or under a new
    transaction_id with a negative amount. A producer's refund may reuse the purchase's `revenue_id` or carry a new
    one, and only a new key with the negative amount is right in both cases: the purchase stays as it was, the
    refund subtracts, and partial refunds add up. `event_id` is stable per fact, so a re-sent refund upserts itself.
    """
    return f"{event.revenue_id}:refund:{event.event_id}"


def _revenue(event: Event, options: UserWiseOptions) -> Sequence[VendorRecord]:
    assert isinstance(event, RevenueEvent)
    style = style_of(options)
    if event.player_id is None:
        return ()  # operator-level revenue has no app user to attach it to
    amount = number(event.amount)
    key = refund_transaction_id(event) if event.kind == "refund" else event.revenue_id
    item: dict[str, Any] = {
        # A refund is always a transaction of its own with a negative amount: see refund_transaction_id.
        "revenue": -abs(amount) if event.kind == "refund" else amount,
        "transaction_id": key,
        "revenue_type": options.revenue_types[event.kind],
    }
    if event.product_id is not None:
        item["product_id"] = event.product_id
    item["attributes"] = [*_identity(event, style), attribute("currency", event.currency, style, "string")]
    return (VendorRecord(REVENUE_EVENTS, record_body(item), _player(event), key),)


# The UserWise records for one event; empty when UserWise does not take it.
map_event: MapDispatch[UserWiseOptions] = MapDispatch(
    {
        "deposit": _deposit,
        "withdrawal": _withdrawal,
        "gameround": _gameround,
        "login": _login,
        "player": _profile,
        "custom": _custom,
        "revenue": _revenue,
    }
)
