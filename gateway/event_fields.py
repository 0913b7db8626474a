"""Field types of the normalized event contract: ids, money, currencies, UTC timestamps and free-form custom values."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "COUNTRY_PATTERN",
    "CRYPTO_TICKERS",
    "CURRENCY_PATTERN",
    "EXACT_NUMBERS_CONTEXT",
    "Brand",
    "Country",
    "Currency",
    "CustomKey",
    "CustomValue",
    "EventId",
    "Money",
    "NaturalId",
    "NonEmptyStr",
    "NonNegativeMoney",
    "PlayerId",
    "Scalar",
    "UtcDatetime",
    "clock_text",
]

# Crypto tickers accepted as currencies, from vendors/intarget.md ("Supported cryptocurrencies").
CRYPTO_TICKERS: Final[frozenset[str]] = frozenset(
    {
        "BTC", "ETH", "USDT", "BNB", "SOL", "USDC", "XRP", "DOGE", "TON", "ADA",
        "SHIB", "AVAX", "TRX", "DOT", "LINK", "BCH", "UNI", "MATIC", "LTC", "NEAR",
    }
)  # fmt: skip

# Validation context key: the long JSON number literals that decode() quoted to keep them exact (see events.decode).
EXACT_NUMBERS_CONTEXT: Final = "gateway.exact_numbers"

# Decimal bounds: DECIMAL(38,18) holds every fiat amount and 18-decimal crypto units (wei), and keeps a hostile
# "1e999999999" from reaching a connector's formatting code.
_MAX_DIGITS: Final = 38
_DECIMAL_PLACES: Final = 18
_MAX_WHOLE_DIGITS: Final = _MAX_DIGITS - _DECIMAL_PLACES


def _any_case(word: str) -> str:
    return "".join(f"[{letter}{letter.lower()}]" for letter in word)


# Checked in pydantic-core (the hot path) before upper-casing, hence the explicit lower-case letters.
CURRENCY_PATTERN: Final = (
    "^(?:[A-Za-z]{3}|" + "|".join(_any_case(t) for t in sorted(CRYPTO_TICKERS) if len(t) != 3) + ")$"
)
COUNTRY_PATTERN: Final = "^[A-Za-z]{2}$"

# RFC 3339 date-time with a mandatory zone ("Z" or +hh:mm): what turns a player custom string into a datetime.
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
_AWARE_DATETIME: Final = TypeAdapter(AwareDatetime)
_RFC3339_MESSAGE: Final = "must be an RFC 3339 date-time with a zone offset, e.g. 2024-05-01T12:00:00Z"


def _datetime_input(value: object) -> object:
    """Let only date-time text (or a datetime) reach pydantic's parser, which would also read unix timestamps."""
    if type(value) is str:
        if value[4:5] == "-":  # YYYY-...; the full RFC 3339 shape and the zone are checked by the parser
            return value
    elif isinstance(value, datetime):
        return value
    raise PydanticCustomError("rfc3339", _RFC3339_MESSAGE)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _parse_utc(text: str) -> datetime | None:
    """The UTC datetime an RFC 3339 string with zone denotes, or None when the text is not one."""
    if _RFC3339.fullmatch(text) is None:
        return None
    try:
        parsed: datetime = _AWARE_DATETIME.validate_python(text)
    except ValidationError:  # shaped like a date-time but not a real one (month 13)
        return None
    return parsed.astimezone(UTC)


def _bounded(number: Decimal) -> Decimal:
    """Apply the Money bounds to a decimal that did not come through a Money field (a custom value)."""
    if not number.is_finite():
        raise PydanticCustomError("finite_number", "must be a finite number")
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = bytes(digits).rstrip(b"\x00") or b"\x00"
    exponent += len(digits) - len(significant)  # trailing zeros do not count as places
    if -exponent > _DECIMAL_PLACES or len(significant) + exponent > _MAX_WHOLE_DIGITS:
        raise PydanticCustomError(
            "decimal_bounds",
            f"must have at most {_MAX_WHOLE_DIGITS} digits before and {_DECIMAL_PLACES} after the decimal point",
        )
    return number


def _few_places(number: Decimal) -> Decimal:
    """Refuse a zero such as 0E-999999999: pydantic's decimal_places check lets it by, and format(d, "f") of it
    would be a gigabyte of zeros. Any other value this catches, pydantic has already refused."""
    if number.adjusted() < -_DECIMAL_PLACES:
        raise PydanticCustomError(
            "decimal_max_places", f"Decimal input should have no more than {_DECIMAL_PLACES} decimal places"
        )
    return number


def _exact_numbers(info: ValidationInfo) -> frozenset[str]:
    context = info.context
    if isinstance(context, dict):
        numbers = context.get(EXACT_NUMBERS_CONTEXT)
        if isinstance(numbers, frozenset):
            return numbers
    return frozenset()


def _scalar_or_none(value: object, info: ValidationInfo) -> str | int | Decimal | bool | None:
    """Keep JSON's own kinds: bool stays bool, integer stays int, a fractional number becomes an exact Decimal."""
    if isinstance(value, bool | int):  # returned as they are: a bool is never widened to 1, nor an int narrowed
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "must be a finite number")
        # repr() is the shortest text that round-trips, so literals of up to 15 significant digits come back exactly;
        # longer literals never get here as floats (decode quotes them and lists them in the context).
        value = Decimal(repr(value))
    elif isinstance(value, str) and value in _exact_numbers(info):
        value = Decimal(value)  # a JSON number literal, quoted by decode
    if isinstance(value, Decimal):
        return _bounded(value)
    return value if isinstance(value, str) else None


def _scalar(value: object, info: ValidationInfo) -> str | int | Decimal | bool:
    result = _scalar_or_none(value, info)
    if result is None:
        raise PydanticCustomError("scalar", "must be a string, a number or a boolean")
    return result


def _custom_value(value: object, info: ValidationInfo) -> str | int | Decimal | bool | datetime | list[str]:
    """A player custom attribute: scalar, RFC 3339 date-time with zone (becomes UTC datetime) or list of strings."""
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise PydanticCustomError("custom_list", "a list must contain only strings")
        if len(value) > MAX_CUSTOM_LIST_ITEMS or any(len(item) > MAX_CUSTOM_TEXT for item in value):
            raise PydanticCustomError(
                "custom_too_long",
                "a custom list holds at most {items} strings of at most {text} characters",
                {"items": MAX_CUSTOM_LIST_ITEMS, "text": MAX_CUSTOM_TEXT},
            )
        return value
    if isinstance(value, str) and len(value) > MAX_CUSTOM_TEXT:
        raise PydanticCustomError(
            "custom_too_long", "a custom value is at most {text} characters", {"text": MAX_CUSTOM_TEXT}
        )
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError("timezone_aware", "a datetime must have a zone offset")
        return value.astimezone(UTC)
    scalar = _scalar_or_none(value, info)
    if scalar is None:
        raise PydanticCustomError(
            "custom_value", "must be a string, number, boolean, RFC 3339 date-time or list of strings"
        )
    if isinstance(scalar, str):
        moment = _parse_utc(scalar)
        if moment is not None:
            return moment
    return scalar


_ANY_SCALAR_SCHEMA: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
"""Any non-empty text: names."""

MAX_ID_LENGTH: Final = 128
"""Every id in the contract is at most this long: stores index them and vendors put them in URLs."""

NaturalId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
"""A natural key: transaction_id, round_id, session_id, game_id, wallet_id, bonus and bet ids..."""

# Player custom fields become vendor attributes and extra feed columns, so they are bounded: a hostile event with
# 20,000 keys would otherwise widen every players feed response.
MAX_CUSTOM_FIELDS: Final = 100
"""Custom fields on one player event."""
MAX_CUSTOM_KEY: Final = 64
"""Characters in a custom field's name."""
MAX_CUSTOM_TEXT: Final = 1024
"""Characters in a custom text value, and in each string of a custom list."""
MAX_CUSTOM_LIST_ITEMS: Final = 100
"""Strings in a custom list."""

CustomKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CUSTOM_KEY)]
"""The name of a player custom field."""

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""The producer's id of one fact, stable across retries; every vendor idempotency key derives from it."""

PlayerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

Brand = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""The tenant; selects the destination's credentials."""

_MONEY_BOUNDS: Final = Field(allow_inf_nan=False, max_digits=_MAX_DIGITS, decimal_places=_DECIMAL_PLACES)
# The bounds as pydantic states them. They stay in the JSON Schema producers read (`gateway schema`), and pydantic
# still decides every value they might refuse (`_MONEY_CHECK`), whatever its version counts. But pydantic-core checks
# max_digits and decimal_places with `normalize()` and two `as_tuple()` calls a value (about 840 ns), and most
# amounts need none of it: written without an exponent, with at most 20 digits before the point and 18 after, a value
# is within every bound, which `_money` sees from its text (about 150 ns). A property test holds the two to the same
# accepted values and the same errors.
_MONEY_CHECK: Final[TypeAdapter[Decimal]] = TypeAdapter(Annotated[Decimal, _MONEY_BOUNDS])
_NON_NEGATIVE_MONEY_CHECK: Final[TypeAdapter[Decimal]] = TypeAdapter(Annotated[Decimal, _MONEY_BOUNDS, Field(ge=0)])
_MONEY_SCHEMA: Final = _MONEY_CHECK.json_schema()
_NON_NEGATIVE_MONEY_SCHEMA: Final = _NON_NEGATIVE_MONEY_CHECK.json_schema()
_FINITE: Final = Field(allow_inf_nan=False)


def _plainly_within_bounds(number: Decimal) -> bool:
    """True when `number` is written without an exponent, with at most 20 digits before the point and 18 after:
    then it has at most 38 digits, 18 places and 20 whole digits however they are counted."""
    text = str(number)
    if "E" in text:
        return False
    whole, _, places = text.lstrip("-").partition(".")
    return len(places) <= _DECIMAL_PLACES and len(whole) <= _MAX_WHOLE_DIGITS


def _checked(number: Decimal, check: TypeAdapter[Decimal]) -> Decimal:
    """`number` through pydantic's own bounds check, its first error raised as the field's own; then `_few_places`."""
    try:
        check.validate_python(number)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        raise PydanticCustomError(first["type"], first["msg"]) from None
    return _few_places(number)


def _money(number: Decimal) -> Decimal:
    """A finite decimal within DECIMAL(38,18) (see _MONEY_BOUNDS)."""
    return number if _plainly_within_bounds(number) else _checked(number, _MONEY_CHECK)


def _non_negative_money(number: Decimal) -> Decimal:
    """`_money`, and >= 0 (checked by pydantic after the bounds, as before)."""
    if number >= 0 and _plainly_within_bounds(number):
        return number
    return _checked(number, _NON_NEGATIVE_MONEY_CHECK)


Money = Annotated[Decimal, _FINITE, WithJsonSchema(_MONEY_SCHEMA), AfterValidator(_money)]
"""An exact decimal from a JSON number or a numeric string; NaN and infinities are refused; fits DECIMAL(38,18)."""

NonNegativeMoney = Annotated[
    Decimal, _FINITE, WithJsonSchema(_NON_NEGATIVE_MONEY_SCHEMA), AfterValidator(_non_negative_money)
]
"""A Money that is >= 0."""

Currency = Annotated[
    str,
    StringConstraints(pattern=CURRENCY_PATTERN, to_upper=True),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(?:[A-Z]{3}|" + "|".join(sorted(CRYPTO_TICKERS)) + ")$",
            "description": "ISO 4217 code or a supported crypto ticker; lower case is accepted and upper-cased.",
        }
    ),
]
"""A currency code.

The rule: three ASCII letters (the ISO 4217 shape; the code list itself is not checked, so a new or unusual code
such as `CUC` passes) or one of `CRYPTO_TICKERS`; accepted in any case and stored in upper case.
"""

Country = Annotated[
    str,
    StringConstraints(pattern=COUNTRY_PATTERN, to_upper=True),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2 code."}),
]
"""ISO 3166-1 alpha-2 shaped (two ASCII letters, the code list itself is not checked), stored in upper case."""

UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_datetime_input), AfterValidator(_to_utc)]
"""RFC 3339 date-time with zone (a naive time or a unix number is refused), stored as an aware datetime in UTC."""

Scalar = Annotated[
    str | int | Decimal | bool,
    PlainValidator(_scalar),
    WithJsonSchema({"anyOf": _ANY_SCALAR_SCHEMA}),
]
"""A JSON string, integer, fractional number (exact Decimal) or boolean, each kept as its own kind."""

CustomValue = Annotated[
    str | int | Decimal | bool | datetime | list[str],
    PlainValidator(_custom_value),
    WithJsonSchema(
        {
            "anyOf": [
                *_ANY_SCALAR_SCHEMA[:1],
                {"type": "string", "format": "date-time"},
                *_ANY_SCALAR_SCHEMA[1:],
                {"type": "array", "items": {"type": "string"}},
            ]
        }
    ),
]
"""A player custom attribute value.

JSON true/false stay bool, integers stay int, fractional numbers become exact Decimal, a string that is an RFC 3339
date-time with zone becomes a UTC datetime, any other string stays a string (numeric-looking strings included),
and a list must hold only strings.
"""


def clock_text(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS`: the datetime's own clock time to the second, exactly as `strftime("%Y-%m-%dT%H:%M:%S")`
    spells it, for connectors' timestamp formats. orjson writes it in a quarter of `isoformat`'s time (290 against
    1,150 ns); before the year 1000 both pad the year, which `strftime` does not, so those take `strftime`."""
    if moment.year < 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return orjson.dumps(moment, option=orjson.OPT_OMIT_MICROSECONDS)[1:20].decode()
