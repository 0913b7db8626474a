"""Unit tests for the Enable3 mapping beyond the golden fixtures: ids, timestamps, currencies, options, templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.enable3.config import Enable3Options, Enable3Settings
from connectors.enable3.mapping import created_at, fill_template, map_event
from devkit.testbed.traffic import Traffic
from gateway.errors import UnsupportedCurrency
from gateway.events import decode


def _map(event: dict[str, Any], **options: Any) -> list[Any]:
    return list(map_event(decode(orjson.dumps(event)), Enable3Options.model_validate(options)))


def test_ids_are_the_event_ids_and_stable() -> None:
    """Every record's `id` is its event's event_id, so a re-sent event carries the same id."""
    for event in Traffic(seed=3, players=20).stream(500):
        for record in _map(event):
            body = orjson.loads(record.body)
            if record.route == "event":
                assert body["id"] == event["event_id"] == record.record_id
                assert body["userId"] == event["player_id"] == record.key


def test_created_at_is_utc_without_zone_or_fraction() -> None:
    """Offsets are converted to UTC and microseconds dropped: `YYYY-MM-DD HH:MM:SS`."""
    event = {"event_id": "e", "type": "login", "occurred_at": "2026-01-01T01:59:59.999+03:00", "player_id": "p"}
    assert orjson.loads(_map(event)[0].body)["createdAt"] == "2025-12-31 22:59:59"
    assert created_at(decode(orjson.dumps(event)).occurred_at) == "2025-12-31 22:59:59"


@given(
    moment=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))])),
)
def test_created_at_is_the_strftime_spelling_for_any_datetime(moment: datetime) -> None:
    """The isoformat-based text is `strftime`'s to the character: every year (before 1000 too), any fraction, any
    offset (the text is the datetime's own clock time, never converted)."""
    assert created_at(moment) == moment.strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("currency", ["EUR", "USD", "USDC", "BTC"])
def test_revenue_in_other_currencies_is_unsupported(currency: str) -> None:
    """Operator revenue not in USDT raises UnsupportedCurrency (reason unsupported_currency), never converted."""
    event = {"event_id": "r", "type": "revenue", "occurred_at": "2026-01-01T00:00:00Z", "revenue_id": "x"}
    with pytest.raises(UnsupportedCurrency) as raised:
        _map({**event, "amount": "10", "currency": currency})
    assert raised.value.reason == "unsupported_currency"
    assert currency in raised.value.detail and "USDT" in raised.value.detail


def test_revenue_request_id_comes_from_revenue_id() -> None:
    """requestId is the revenue_id, so a re-sent revenue is recognisable as the same."""
    event = {"event_id": "e1", "type": "revenue", "occurred_at": "2026-01-01T00:00:00Z", "revenue_id": "rev-9"}
    records = _map({**event, "amount": "3.10", "currency": "USDT"})
    assert orjson.loads(records[0].body) == {"requestId": "rev-9", "revenue": 3.1, "date": "2026-01-01 00:00:00"}


def test_template_with_a_segment_list_and_nested_objects() -> None:
    """{segments} becomes the list, {userId} the player, other values stay as written."""
    template = {"data": {"user": "{userId}", "names": "{segments}", "n": 1, "flags": [True, "{userId}"]}}
    assert fill_template(template, "p1", ["a", "b"]) == {
        "data": {"user": "p1", "names": ["a", "b"], "n": 1, "flags": [True, "p1"]}
    }


@pytest.mark.parametrize(
    "template",
    [
        [{"segment": "{segment}"}],  # no user
        [{"userId": "{userId}"}],  # no segment
        [{"userId": "{userId}", "segment": "{segment}"}, {"x": 1}],  # {segment} outside a one-element list
        {"userId": "{userId}", "segments": "{segments}"},  # not an array
    ],
    ids=["no-user", "no-segment", "segment-outside-single-list", "not-an-array"],
)
def test_unusable_segment_templates_fail_at_startup(template: Any) -> None:
    """A template that cannot carry the user and the segments is a configuration error."""
    with pytest.raises(ValidationError):
        Enable3Options.model_validate({"segment_template": template})


def test_statuses_only_for_types_that_have_one() -> None:
    """A status filter for a type without statuses is a configuration error."""
    with pytest.raises(ValidationError):
        Enable3Options.model_validate({"statuses": {"gameround": ["success"]}})


def test_enabled_ambassador_requires_a_long_token() -> None:
    """The ambassador cannot be enabled without a bearer token, nor with a short one."""
    with pytest.raises(ValidationError):
        Enable3Settings.model_validate({"ambassador": {"enabled": True}})
    with pytest.raises(ValidationError):
        Enable3Settings.model_validate({"ambassador": {"enabled": True, "token": "short"}})
    settings = Enable3Settings.model_validate({"ambassador": {"enabled": True, "token": "t" * 16}})
    assert "t" * 16 not in repr(settings)


@pytest.mark.parametrize(
    "template",
    [{"revenue": "{revenue}", "date": "{date}"}, {"requestId": "{requestId}"}, {}, "{requestId}{revenue}"],
    ids=["no-request-id", "no-revenue", "empty", "not-json-container"],
)
def test_unusable_revenue_templates_fail_at_startup(template: Any) -> None:
    """The revenue body (an assumption, so configurable) must carry the request id and the amount."""
    with pytest.raises(ValidationError, match="revenue template"):
        Enable3Options.model_validate({"revenue_template": template})


def test_a_refund_under_the_purchases_revenue_id_gets_a_request_id_of_its_own() -> None:
    """A refund reusing the purchase's revenue_id would be Enable3's 409 "duplicate entry" (counted as delivered,
    so lost) under the same requestId: it is sent negative under a key derived from its own event instead."""
    purchase = {"event_id": "pu", "type": "revenue", "occurred_at": "2026-03-01T12:00:00Z", "revenue_id": "rev-1",
                "amount": "10", "currency": "USDT"}  # fmt: skip
    refund = {**purchase, "event_id": "rf", "kind": "refund"}
    bodies = [
        orjson.loads(r.body) for e in (purchase, refund) for r in map_event(decode(orjson.dumps(e)), Enable3Options())
    ]
    assert [(b["requestId"], b["revenue"]) for b in bodies] == [("rev-1", 10.0), ("rev-1:refund:rf", -10.0)]
