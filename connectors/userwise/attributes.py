"""UserWise attributes (`{"name", "value", "data_type"}`): the data type of a value and the value in that type."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.userwise.config import DataType, UserWiseOptions
from gateway.errors import MappingError
from gateway.event_fields import clock_text

Attribute = dict[str, Any]

# Profile fields whose type is not a plain string.
FIELD_TYPES: dict[str, DataType] = {
    "registered_at": "datetime",
    "email_confirmed_at": "datetime",
    "phone_confirmed_at": "datetime",
    "is_blocked": "boolean",
    "self_excluded": "boolean",
    "consent_email": "boolean",
    "consent_sms": "boolean",
    "consent_push": "boolean",
}


def datetime_text(value: datetime) -> str:
    """UserWise's datetime format, `YYYY-MM-DDTHH:MM:SSZ` (values are UTC by the event contract)."""
    return clock_text(value) + "Z"


def number(value: Decimal | int | float) -> float:
    """A JSON float from an exact amount; refuses what JSON cannot carry."""
    result = float(value)
    if not math.isfinite(result):
        raise MappingError(f"{value} is not a finite number")
    return result


def inferred_type(value: Any) -> DataType:
    """The data type a value naturally has."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal | float):
        return "float"
    if isinstance(value, datetime):
        return "datetime"
    return "string"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return datetime_text(value)
    if isinstance(value, list | tuple):
        return ",".join(str(part) for part in value)
    return str(value)


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        return number(value)
    return None


_CONVERTERS: dict[DataType, Callable[[Any], Any]] = {
    "string": _as_text,
    "boolean": lambda value: value if isinstance(value, bool) else None,
    "integer": _as_integer,
    "float": _as_float,
    "datetime": lambda value: datetime_text(value) if isinstance(value, datetime) else None,
}


def converted(name: str, value: Any, data_type: DataType) -> Any:
    """`value` expressed in `data_type`; a MappingError when it cannot be (e.g. text configured as an integer)."""
    if value is None:
        return None
    result = _CONVERTERS[data_type](value)
    if result is None:
        raise MappingError(f"attribute {name!r}: {type(value).__name__} value cannot be sent as {data_type}")
    return result


@dataclass(frozen=True, slots=True)
class AttributeStyle:
    """What the options say about every attribute: type overrides by name, and a prefix for every name. Read from
    the options once per event (see `style_of`), not per attribute: an options field is a model attribute, whose
    lookup costs several times a plain one."""

    overrides: Mapping[str, DataType]
    prefix: str


_STYLES: dict[int, tuple[UserWiseOptions, AttributeStyle]] = {}
_MAX_STYLES = 64


def style_of(options: UserWiseOptions) -> AttributeStyle:
    """The attribute style of `options`, made once per options object (keyed by its id; the entry holds it)."""
    entry = _STYLES.get(id(options))
    if entry is None or entry[0] is not options:
        if len(_STYLES) >= _MAX_STYLES:
            _STYLES.clear()
        entry = _STYLES[id(options)] = (options, AttributeStyle(options.data_types, options.attribute_prefix))
    return entry[1]


def attribute(name: str, value: Any, style: AttributeStyle, data_type: DataType | None = None) -> Attribute:
    """One attribute; `style.overrides` overrides the type, `style.prefix` prefixes the name.

    Runs several times per event, so the common cases (text, datetimes, amounts and flags in their own types) take
    no detour through `converted`, which gives the same values (the property tests check both ways)."""
    overrides = style.overrides
    chosen = (overrides.get(name) if overrides else None) or data_type or inferred_type(value)
    kind = value.__class__
    if value is None or (kind is str and chosen == "string"):
        sent = value
    elif kind is datetime and chosen == "datetime":
        sent = datetime_text(value)
    elif kind is Decimal and chosen == "float":
        sent = number(value)
    elif kind is bool and chosen == "boolean":
        sent = value
    else:
        sent = converted(name, value, chosen)
    prefix = style.prefix
    return {"name": prefix + name if prefix else name, "value": sent, "data_type": chosen}
