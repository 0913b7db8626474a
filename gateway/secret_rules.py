"""The minimum for secrets the gateway checks itself: feed passwords and tokens, ambassador tokens, callback secrets."""

from __future__ import annotations

from pydantic import SecretStr

MIN_SECRET_LENGTH = 16
"""Characters; an empty `${VAR}` or a short word would let anyone guess their way into feeds that carry PII."""


def long_enough(value: SecretStr | None, what: str) -> SecretStr | None:
    """`value` unchanged, or ValueError when it is shorter than MIN_SECRET_LENGTH (the message never shows it)."""
    if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        size = len(value.get_secret_value())
        hint = " (is its ${VAR} set to an empty string?)" if size == 0 else ""
        raise ValueError(f"{what} must be at least {MIN_SECRET_LENGTH} characters, got {size}{hint}")
    return value
