"""Durations in configuration: a number of seconds (or milliseconds for `_ms` keys) or a string with a unit."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator

__all__ = ["Duration", "DurationMs", "parse_duration"]

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: Any, unit: float = 1.0) -> Any:
    """`10s`, `500ms`, `2m`, `1.5h` or a bare number (in `unit` seconds) as a number of `unit`; other input unchanged.

    Anything that is not a string is left for pydantic's own number checks, so their messages stay the usual ones.
    """
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError("must be a duration: a number, or a number with a unit (ms, s, m, h, d) such as 10s or 500ms")
    number, suffix = float(match.group(1)), match.group(2)
    seconds = number * (_UNITS[suffix] if suffix else unit)
    return seconds / unit


def _milliseconds(value: Any) -> Any:
    parsed = parse_duration(value, unit=0.001)
    return round(parsed) if isinstance(value, str) else parsed


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds: `2.5`, `"10s"`, `"500ms"`, `"2m"`."""

DurationMs = Annotated[int, BeforeValidator(_milliseconds)]
"""Milliseconds (for the `_ms` keys): `500`, `"500ms"`, `"2s"`."""
