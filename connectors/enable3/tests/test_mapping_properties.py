"""Property tests: no custom or revenue event the contract accepts makes the Enable3 mapping crash."""

from __future__ import annotations

from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.enable3.config import Enable3Options
from connectors.enable3.mapping import map_event
from gateway.errors import EventError, InvalidEvent
from gateway.events import decode

_text = st.text(min_size=1, max_size=40)
_amount = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(name=_text, value=_amount, tags=st.lists(st.text(max_size=20), max_size=5), player=_text)
def test_custom_events_map_or_raise_an_event_error(name: str, value: Decimal, tags: list[str], player: str) -> None:
    """Any valid custom event maps to one well-formed request whose id, user and tags are the event's."""
    raw = {
        "event_id": "c1",
        "type": "custom",
        "occurred_at": "2026-01-01T00:00:00Z",
        "player_id": player,
        "name": name,
        "value": str(value),
        "tags": tags,
    }
    try:
        event = decode(orjson.dumps(raw))
    except InvalidEvent:
        return
    try:
        records = map_event(event, Enable3Options())
    except EventError:
        return
    body = orjson.loads(records[0].body)
    assert (body["id"], body["userId"], body["eventId"], body["eventTags"]) == ("c1", player, name, tags)
    assert body["value"] == float(value)


@settings(max_examples=200, deadline=None)
@given(currency=st.sampled_from(["USDT", "usdt", "EUR", "BTC", "USDC"]), amount=_amount)
def test_operator_revenue_is_usdt_or_unsupported(currency: str, amount: Decimal) -> None:
    """Operator revenue maps to /revenue exactly when the currency is USDT, else raises unsupported_currency."""
    raw = {
        "event_id": "r1",
        "type": "revenue",
        "occurred_at": "2026-01-01T00:00:00Z",
        "revenue_id": "rv",
        "amount": str(amount),
        "currency": currency,
    }
    event = decode(orjson.dumps(raw))
    try:
        records = map_event(event, Enable3Options())
    except EventError as error:
        assert error.reason == "unsupported_currency" and currency.upper() != "USDT"
        return
    assert currency.upper() == "USDT" and [r.route for r in records] == ["revenue"]
