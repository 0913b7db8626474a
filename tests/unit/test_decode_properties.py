"""Property tests of `decode`: no input crashes it, and its error details stay short and free of input values."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import EventError, InvalidEvent, InvalidJson
from gateway.events import EVENT_TYPES, decode
from tests.unit.test_events import FULL, message

# Planted in every generated text value; an error detail containing it has echoed producer data.
MARKER = "mk" + secrets.token_hex(6)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

marked_text = st.builds(lambda before, after: before + MARKER + after, st.text(max_size=12), st.text(max_size=12))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    marked_text,
    st.sampled_from([f"{MARKER}-2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", "1e999999999", "-0", "NaN", ""]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def check_outcome(raw: bytes) -> None:
    """decode either returns an event or raises InvalidJson/InvalidEvent with a short, value-free detail."""
    try:
        event = decode(raw)
    except EventError as error:
        assert type(error) in {InvalidJson, InvalidEvent}
        assert error.detail == str(error)
        assert 0 < len(error.detail) <= 1024
        assert "\n" not in error.detail
        assert MARKER not in error.detail
    else:
        assert event.type in EVENT_TYPES


def encode(value: Any) -> bytes:
    """JSON text as a careless producer might write it: NaN and Infinity literals included."""
    return json.dumps(value, allow_nan=True).encode()


@PROPERTY_SETTINGS
@given(st.binary(max_size=256))
def test_arbitrary_bytes(raw: bytes) -> None:
    """Any byte string decodes or fails with one of the two decode errors."""
    check_outcome(raw)


@PROPERTY_SETTINGS
@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    """Any JSON value, object or not, decodes or fails with one of the two decode errors."""
    check_outcome(encode(value))


@PROPERTY_SETTINGS
@given(
    st.sampled_from(EVENT_TYPES),
    st.dictionaries(
        st.sampled_from(["event_id", "occurred_at", "player_id", "brand", "amount", "currency", "custom", "x"]),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_fields_for_a_known_type(event_type: str, fields: dict[str, Any]) -> None:
    """A known type with arbitrary values in common and typed fields decodes or fails cleanly."""
    check_outcome(encode({"type": event_type, **fields}))


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid full event of a random type, then a few random deletions, replacements, nulls and additions."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    body = message(event_type, FULL[event_type])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.sampled_from(sorted(body)))
        action = draw(st.sampled_from(["delete", "replace", "null", "add", "retype", "nest"]))
        if action == "delete":
            body.pop(name, None)
        elif action == "replace":
            body[name] = draw(json_values)
        elif action == "null":
            body[name] = None
        elif action == "add":
            body[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "retype":
            body["type"] = draw(st.sampled_from([*EVENT_TYPES, MARKER]))
        elif isinstance(body.get(name), dict):
            body[name] = {**body[name], draw(st.text(min_size=1, max_size=6)): draw(json_values)}
        elif isinstance(body.get(name), list) and body[name]:
            body[name] = [*body[name][:-1], draw(json_values)]
    return body


@PROPERTY_SETTINGS
@given(mutated_events())
def test_mutated_valid_events(body: dict[str, Any]) -> None:
    """Valid events with random mutations decode or fail cleanly, never echoing the planted values."""
    check_outcome(encode(body))


@PROPERTY_SETTINGS
@given(mutated_events(), st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=3))
def test_corrupted_bytes_of_valid_events(body: dict[str, Any], position: int, junk: bytes) -> None:
    """Splicing random bytes into a valid message's JSON text never makes decode raise anything else."""
    raw = encode(body)
    at = position % (len(raw) + 1)
    check_outcome(raw[:at] + junk + raw[at + len(junk) :])


@PROPERTY_SETTINGS
@given(
    st.sampled_from(["deposit", "withdrawal", "gameround", "revenue", "wallet"]),
    st.from_regex(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)
def test_any_json_number_amount(event_type: str, literal: str) -> None:
    """Any JSON number literal as the amount or balance decodes exactly or fails cleanly."""
    body = message(event_type, FULL[event_type])
    field = "balance" if event_type == "wallet" else "amount"
    body[field] = 0
    raw = encode(body).replace(f'"{field}": 0'.encode(), f'"{field}": {literal}'.encode())
    try:
        event = decode(raw)
    except EventError as error:
        assert type(error) is InvalidEvent
        assert MARKER not in error.detail
    else:
        assert getattr(event, field) == Decimal(literal)
