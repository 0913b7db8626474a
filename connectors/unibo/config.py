"""Unibo destination settings: the per-tenant API key, mapping options and batching defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.connector import ConnectorDefaults
from gateway.iso4217 import is_iso4217

DEFAULTS = ConnectorDefaults(
    max_events=10_000,  # Unibo's guidance: flush every 500 ms or 10,000 events
    max_bytes=8 * 1024 * 1024,  # Unibo publishes no byte limit; this keeps one request's memory bounded
    linger_ms=500,
    concurrency=4,
    api_path="/api/v1",  # client.PATH is /api/v1/events
    base_url="https://consumer.unibo.io",
)


class UniboCredentials(BaseModel):
    """One tenant (casino brand) of Unibo: its x-api-key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(min_length=1)


class UniboOptions(BaseModel):
    """How normalized events become Unibo items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_method: str = Field(
        "unknown",
        min_length=1,
        description="sent as `method` when a deposit or withdrawal has none (Unibo requires it)",
    )
    operator: str | None = Field(None, description="`operator` on player items, when the aggregator expects one")
    send_username: bool = Field(True, description="send `username` on player items (never when it looks like an email)")
    currency_map: dict[str, str] = Field(
        default_factory=dict,
        description="a currency Unibo does not take (e.g. a crypto ticker) -> the ISO-4217 code to send instead, "
        "amount unchanged, e.g. {USDT: USD}; an unmapped non-ISO currency is dead-lettered (unsupported_currency)",
    )

    @field_validator("currency_map")
    @classmethod
    def _maps_to_iso4217(cls, value: dict[str, str]) -> dict[str, str]:
        upper = {source.strip().upper(): target.strip().upper() for source, target in value.items()}
        wrong = sorted(f"{source}: {target}" for source, target in upper.items() if not is_iso4217(target))
        if wrong:
            raise ValueError(f"currency_map must map to ISO-4217 codes in circulation; not: {', '.join(wrong)}")
        if any(not source for source in upper):
            raise ValueError("currency_map has an empty currency")
        return upper
