"""Helpers of `events.decode`: exact JSON numbers despite the parser's f64, and PII-free one-line error details."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from gateway.errors import EventError, InvalidEvent, InvalidJson
from gateway.event_fields import COUNTRY_PATTERN, CURRENCY_PATTERN

__all__ = ["MAX_DETAIL", "describe_failure", "may_hold_inexact_numbers", "quote_inexact_numbers"]

MAX_DETAIL: Final = 1024
_MAX_LISTED_ERRORS: Final = 8

# pydantic-core reads a fractional JSON number as an f64 before making a Decimal of it. That is exact for literals of
# up to 15 significant digits in the normal range; a literal with more digits, or with an extreme exponent (1e-400
# would become 0), needs its text. The cheap test maps bytes to classes: digits and "." to "0", what may come before a
# number's digits (":", ",", "[", whitespace, and a sign) to ":", "e" to "e", anything else to " "; then a value that
# starts with 16+ digits is one `in` (a sign or whitespace before it is a ":" too), and an exponent of 3+ digits with
# a sign is "e:000". `in` on bytes is much faster than a regex scan. A hit inside a string only costs time: the
# rewrite looks at real number literals alone.
_BYTE_CLASSES: Final = bytes(
    ord("0") if byte in b"0123456789."
    else ord(":") if byte in b':,[-+ \t\r\n'
    else ord("e") if byte in b"eE"
    else ord(" ")
    for byte in range(256)
)  # fmt: skip
_LONG_MANTISSA: Final = b":" + b"0" * 16
_SIGNED_LONG_EXPONENT: Final = b"e:000"
_EXTREME_EXPONENT: Final = re.compile(rb":0+e:000")
_JSON_STRING_OR_NUMBER: Final = re.compile(
    rb'"(?:[^"\\]|\\.)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?', re.DOTALL
)
_MAX_EXACT_DIGITS: Final = 15
_MAX_PLAIN_LENGTH: Final = 100  # 0.000...1 with 300+ zeros would underflow without any exponent

_SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_PATTERN_MESSAGES: Final = {
    CURRENCY_PATTERN: "must be an ISO 4217 code (3 letters) or a supported crypto ticker",
    COUNTRY_PATTERN: "must be an ISO 3166-1 alpha-2 code (2 letters)",
}


def may_hold_inexact_numbers(raw: bytes) -> bool:
    """Cheap test: False means every JSON number in `raw` survives the parser's f64 exactly."""
    classes = raw.translate(_BYTE_CLASSES)
    # `find`, not `in`: CPython 3.11's `bytes in bytes` first tries its operand as a byte value, raising and clearing
    # a TypeError each time (about 1,900 instructions, more than the search).
    if classes.find(_LONG_MANTISSA) != -1:
        return True
    return classes.find(_SIGNED_LONG_EXPONENT) != -1 and _EXTREME_EXPONENT.search(classes) is not None


def quote_inexact_numbers(raw: bytes) -> tuple[bytes, frozenset[str]]:
    """`raw` (valid JSON) with every number literal that f64 would alter turned into a JSON string, and those literals.

    Pydantic reads a numeric string into a Decimal from its text, so the quoted numbers arrive exactly.
    """
    quoted: set[str] = set()

    def quote(match: re.Match[bytes]) -> bytes:
        token = match.group()
        if token[:1] == b'"' or not _loses_precision(token):
            return token
        quoted.add(token.decode("ascii"))
        return b'"' + token + b'"'

    rewritten = _JSON_STRING_OR_NUMBER.sub(quote, raw)
    return rewritten, frozenset(quoted)


def _loses_precision(number: bytes) -> bool:
    mantissa, _, exponent = number.lower().partition(b"e")
    if b"." not in mantissa and not exponent:
        return False  # an integer literal is read as an exact (big) int
    digits = mantissa.lstrip(b"-").replace(b".", b"").strip(b"0")
    # Quoting a number that did not need it costs nothing but time, so the range test is generous.
    return len(digits) > _MAX_EXACT_DIGITS or len(mantissa) > _MAX_PLAIN_LENGTH or len(exponent.lstrip(b"+-")) >= 3


def describe_failure(exc: ValidationError, event_types: Sequence[str]) -> EventError:
    """The decode error for a failed validation, with a one-line detail that names fields but repeats no value."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return InvalidJson(_clip(first["msg"]))
    if first["type"] in {"dict_type", "model_attributes_type"} and not first["loc"]:
        return InvalidJson("the JSON value is not an object")
    if len(errors) > 1:  # noise: "the default factory was not called because another field failed"
        errors = [error for error in errors if error["type"] != "default_factory_not_called"]
    tag = first["loc"][0] if first["loc"] else None
    prefix = f"{tag} event: " if tag in event_types else ""
    parts = [
        f"{_path(error, strip_tag=bool(prefix))}: {_message(error, event_types)}"
        for error in errors[:_MAX_LISTED_ERRORS]
    ]
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more errors")
    return InvalidEvent(_clip(prefix + "; ".join(parts)))


def _path(error: ErrorDetails, *, strip_tag: bool) -> str:
    loc = error["loc"][1:] if strip_tag else error["loc"]
    if not loc:
        return "type" if error["type"].startswith("union_tag") else "(event)"
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:  # keys of custom maps come from the producer: only plain names are shown
            name = part if _SAFE_KEY.fullmatch(part) else "?"
            text += f".{name}" if text else name
    return text


def _message(error: ErrorDetails, event_types: Sequence[str]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":  # pydantic's own message repeats the unknown tag
        return "unknown event type; expected one of " + ", ".join(event_types)
    if kind == "union_tag_not_found":
        return "missing (the event type, one of " + ", ".join(event_types) + ")"
    if kind == "missing":
        return "required"
    if kind == "timezone_aware":
        return "must have a zone offset (RFC 3339, e.g. 2024-05-01T12:00:00Z)"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        if isinstance(pattern, str) and pattern in _PATTERN_MESSAGES:
            return _PATTERN_MESSAGES[pattern]
    return error["msg"]


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
