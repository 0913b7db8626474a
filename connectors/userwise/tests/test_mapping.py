"""UserWise mapping beyond the golden fixtures: option validation, PII defaults, refusals and data types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.userwise.attributes import attribute, converted, datetime_text, inferred_type, style_of
from connectors.userwise.config import UserWiseOptions
from connectors.userwise.mapping import map_event
from devkit.testbed.traffic import Traffic
from gateway.errors import MappingError
from gateway.events import decode

PII = ("email", "phone", "first_name", "last_name", "username", "birthday", "city", "ip", "user_agent", "push_token")


def _map(event: dict[str, Any], **options: Any) -> list[Any]:
    records = map_event(decode(orjson.dumps(event)), UserWiseOptions.model_validate(options))
    return [orjson.loads(record.body) for record in records]


def _player(**fields: Any) -> dict[str, Any]:
    return {"event_id": "pl", "type": "player", "occurred_at": "2026-01-01T00:00:00Z", "player_id": "p", **fields}


def test_default_allow_list_sends_no_pii_across_a_stream() -> None:
    """Across generated player events, no default attribute is a PII field and no PII value leaves the gateway."""
    for event in Traffic(seed=3, players=50).stream(2000):
        if event["type"] != "player":
            continue
        for attributes in _map(event):
            for item in attributes:
                assert item["name"] not in PII
                assert item["value"] not in (event.get("email"), event.get("phone"), event.get("username"))


@pytest.mark.parametrize(
    "options",
    [
        {"profile_fields": ["email", "nonsense"]},
        {"profile_fields": ["custom."]},
        {"event_names": {"teleport": "x"}},
        {"event_names": {"bet": ""}},
        {"revenue_types": {"chargeback": "x"}},
        {"data_types": {"level": "decimal"}},
        {"max_items_per_request": 0},
    ],
    ids=["unknown-field", "empty-custom", "unknown-kind", "empty-name", "unknown-revenue-kind", "bad-type", "zero"],
)
def test_invalid_options_fail_at_startup(options: dict[str, Any]) -> None:
    """A configuration mistake is refused when the options are parsed, not when an event arrives."""
    with pytest.raises(ValidationError):
        UserWiseOptions.model_validate(options)


def test_pii_is_sent_only_when_the_operator_allows_it() -> None:
    """An operator may allow-list email explicitly; only then it becomes an attribute."""
    event = _player(email="a@example.com", country="DE")
    assert [a["name"] for a in _map(event)[0]] == ["country"]
    allowed = _map(event, profile_fields=["email", "country"])[0]
    assert {"name": "email", "value": "a@example.com", "data_type": "string"} in allowed


@pytest.mark.parametrize("player_id", [".", ".."])
def test_dot_segment_player_ids_are_mapping_errors(player_id: str) -> None:
    """A player id that cannot be a URL path segment goes to the DLQ as a mapping error."""
    event = {"event_id": "l", "type": "login", "occurred_at": "2026-01-01T00:00:00Z", "player_id": player_id}
    with pytest.raises(MappingError, match="cannot be addressed"):
        _map(event)


def test_a_value_that_cannot_take_the_configured_type_is_a_mapping_error() -> None:
    """Configuring text as an integer refuses the event (DLQ with reason) instead of sending a wrong type."""
    with pytest.raises(MappingError, match="country"):
        _map(_player(country="DE"), data_types={"country": "integer"})


def test_configured_types_convert_values() -> None:
    """data_types turns booleans into text and integral decimals into integers."""
    event = _player(is_blocked=True, custom={"level": "7"})
    attributes = _map(event, data_types={"is_blocked": "string"}, profile_fields=["is_blocked", "custom.level"])[0]
    assert attributes[0] == {"name": "is_blocked", "value": "true", "data_type": "string"}
    custom = _map(
        _player(custom={"score": 3.0}),
        data_types={"score": "integer"},
        profile_fields=["custom.*"],
    )[0]
    assert custom == [{"name": "score", "value": 3, "data_type": "integer"}]


def test_every_event_item_carries_event_uid_and_occurred_at() -> None:
    """Each events[] and revenue_events[] item of a realistic stream starts with event_uid and occurred_at."""
    seen = 0
    for event in Traffic(seed=9, players=50).stream(1500):
        for item in _map(event):
            if isinstance(item, dict):
                names = [a["name"] for a in item["attributes"][:2]]
                assert names == ["event_uid", "occurred_at"]
                assert item["attributes"][0]["value"] == event["event_id"]
                seen += 1
    assert seen > 500


_custom_values = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        _custom_values,
        st.floats(allow_nan=True, allow_infinity=True),
        st.decimals(allow_nan=False, allow_infinity=False),  # what the event contract's numbers decode to
        st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))])),
    ),
    data_type=st.one_of(st.none(), st.sampled_from(["string", "boolean", "integer", "float", "datetime"])),
    override=st.one_of(st.none(), st.sampled_from(["string", "boolean", "integer", "float", "datetime"])),
    prefix=st.sampled_from(["", "gw_"]),
)
def test_an_attribute_holds_what_the_general_conversion_gives(
    value: Any, data_type: str | None, override: str | None, prefix: str
) -> None:
    """`attribute` takes shortcuts for the common types; for any value, declared type, configured override and
    prefix it sends exactly what `converted` makes of the value, or refuses it the same way."""
    options = UserWiseOptions.model_validate(
        {"attribute_prefix": prefix, "data_types": {"x": override} if override else {}}
    )
    chosen = override or data_type or inferred_type(value)
    try:
        expected = converted("x", value, chosen)  # type: ignore[arg-type]
    except MappingError as refused:
        with pytest.raises(MappingError) as raised:
            attribute("x", value, style_of(options), data_type)  # type: ignore[arg-type]
        assert str(raised.value) == str(refused)
        return
    made = attribute("x", value, style_of(options), data_type)  # type: ignore[arg-type]
    assert made == {"name": f"{prefix}x", "value": expected, "data_type": chosen}
    assert type(made["value"]) is type(expected)


@settings(max_examples=200, deadline=None)
@given(
    custom=st.dictionaries(st.text(min_size=1, max_size=10), _custom_values, max_size=5),
    data_type=st.sampled_from(["string", "boolean", "integer", "float", "datetime"]),
    country=st.one_of(st.none(), st.sampled_from(["DE", "br"])),
)
def test_any_profile_maps_to_valid_attributes_or_a_mapping_error(
    custom: dict[str, Any], data_type: str, country: str | None
) -> None:
    """Whatever custom values and configured types: attributes with a declared type, or a MappingError (DLQ)."""
    names = list(custom)
    options = {"profile_fields": ["country", "custom.*"], "data_types": dict.fromkeys(names[:1], data_type)}
    event = _player(
        country=country, custom={name: float(v) if isinstance(v, Decimal) else v for name, v in custom.items()}
    )
    try:
        mapped = _map(event, **options)
    except MappingError:
        return
    for attributes in mapped:
        for item in attributes:
            assert item["data_type"] in {"string", "boolean", "integer", "float", "datetime"}
            assert set(item) == {"name", "value", "data_type"}


def _revenue(event_id: str, revenue_id: str, amount: str, kind: str = "purchase") -> dict[str, Any]:
    return {"event_id": event_id, "type": "revenue", "occurred_at": "2026-03-01T12:00:00Z", "player_id": "p",
            "revenue_id": revenue_id, "amount": amount, "currency": "USD", "kind": kind}  # fmt: skip


@pytest.mark.parametrize(
    ("refunds", "net"),
    [
        ([("rf-1", "rev-1", "9.99")], 0.0),  # the refund reuses the purchase's id
        ([("rf-1", "ref-1", "9.99")], 0.0),  # the refund has an id of its own
        ([("rf-1", "rev-1", "4"), ("rf-2", "rev-1", "5.99")], 0.0),  # two partial refunds under the purchase's id
        ([("rf-1", "rev-1", "4")], 5.99),  # one partial refund
    ],
    ids=["same-id", "new-id", "two-partial-same-id", "partial"],
)
def test_refunds_net_out_under_userwise_upsert_rule(refunds: list[tuple[str, str, str]], net: float) -> None:
    """UserWise keeps one revenue event per transaction_id (a repeat updates it): after the purchase and its refunds,
    re-sent once each, the player's revenue is the purchase minus the refunds, whatever ids the refunds carry."""
    stored: dict[str, float] = {}
    events = [_revenue("pu-1", "rev-1", "9.99")] + [_revenue(*refund, kind="refund") for refund in refunds]
    for event in events * 2:  # a re-send upserts, never adds
        for item in _map(event):
            stored[item["transaction_id"]] = item["revenue"]
    assert round(sum(stored.values()), 2) == net
    assert stored["rev-1"] == 9.99  # the purchase itself is never overwritten by a refund


@given(moment=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])))
def test_datetime_text_is_the_strftime_spelling_for_any_datetime(moment: datetime) -> None:
    """The isoformat-based text is `strftime`'s to the character: every year (before 1000 too), any fraction, any
    offset (the text is the datetime's own clock time, never converted)."""
    assert datetime_text(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
