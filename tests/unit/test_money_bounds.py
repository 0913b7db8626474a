"""Money's DECIMAL(38,18) check agrees with pydantic's own max_digits and decimal_places check on every value."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from gateway.event_fields import Money, NonNegativeMoney, _few_places
from gateway.events import json_schema

# The types as they were declared before the check moved out of pydantic-core: the reference.
_BOUNDS = Field(allow_inf_nan=False, max_digits=38, decimal_places=18)
REFERENCE_MONEY: TypeAdapter[Decimal] = TypeAdapter(Annotated[Decimal, _BOUNDS, AfterValidator(_few_places)])
REFERENCE_NON_NEGATIVE: TypeAdapter[Decimal] = TypeAdapter(
    Annotated[Decimal, _BOUNDS, Field(ge=0), AfterValidator(_few_places)]
)
PAIRS = [
    (REFERENCE_MONEY, TypeAdapter(Money)),
    (REFERENCE_NON_NEGATIVE, TypeAdapter(NonNegativeMoney)),
]

# Decimals of every shape: few and many digits (past the 28 the context rounds to), trailing zeros, exponents near
# and far beyond the bounds, both signs, zeros with any exponent.
decimals = st.one_of(
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, digits, exponent)),
        st.sampled_from([0, 1]),
        st.lists(st.integers(0, 9), min_size=1, max_size=45).map(tuple),
        st.one_of(st.integers(-60, 40), st.sampled_from([-999_999, -30, -19, -18, -17, 0, 2, 19, 20, 21])),
    ),
    st.builds(  # plain notation at the bounds: 19-21 digits before the point, 17-19 after
        lambda sign, whole, places: Decimal(f"{sign}{whole}.{places}"),
        st.sampled_from(["", "-"]),
        st.from_regex(r"[0-9]{1,2}|[1-9][0-9]{18,20}", fullmatch=True),
        st.from_regex(r"[0-9]{17,19}", fullmatch=True),
    ),
)
texts = st.one_of(
    decimals.map(str),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,25})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
)


def _outcome(adapter: TypeAdapter[Decimal], value: Any, json: bool) -> tuple[str, Any]:
    try:
        result = adapter.validate_json(value) if json else adapter.validate_python(value)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        return "refused", (first["type"], first["msg"])
    return "accepted", (result, str(result))


@settings(max_examples=600, deadline=None)
@given(value=decimals)
def test_a_decimal_is_accepted_or_refused_as_pydantic_bounds_would(value: Decimal) -> None:
    for reference, money in PAIRS:
        assert _outcome(money, value, json=False) == _outcome(reference, value, json=False)


@settings(max_examples=600, deadline=None)
@given(text=texts)
def test_json_numbers_and_numeric_strings_are_accepted_or_refused_as_pydantic_bounds_would(text: str) -> None:
    """Numbers read through the parser's f64, numeric strings from their text (how decode keeps long literals)."""
    for raw in (text.encode(), orjson.dumps(text)):
        for reference, money in PAIRS:
            assert _outcome(money, raw, json=True) == _outcome(reference, raw, json=True)


def test_the_edges_of_each_bound() -> None:
    """Each bound at its limit and one past it, and the messages a dead letter carries."""
    money = TypeAdapter(NonNegativeMoney)
    assert money.validate_python(Decimal("1" * 20 + "." + "1" * 18)) == Decimal("1" * 20 + "." + "1" * 18)
    cases = {
        Decimal("1" * 21): "no more than 20 digits before the decimal point",
        Decimal("0." + "1" * 19): "no more than 18 decimal places",
        Decimal("1E+25"): "no more than 20 digits before the decimal point",
        Decimal("0E-999999999"): "no more than 18 decimal places",
        Decimal("-1"): "greater than or equal to 0",
    }
    for value, message in cases.items():
        assert _outcome(money, value, json=False)[1][1].endswith(message), value
        assert _outcome(money, value, json=False) == _outcome(REFERENCE_NON_NEGATIVE, value, json=False)


def test_the_published_schema_still_states_the_bounds() -> None:
    """Producers read the bounds from `gateway schema`: each amount's schema is the one pydantic derives from them."""
    schema = orjson.dumps(json_schema())
    for reference, _ in PAIRS:
        assert orjson.dumps(reference.json_schema()["anyOf"])[1:-1] in schema  # the number and the numeric string
