"""Unibo destination settings: the per-tenant API key, mapping options and batching defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gateway.connector import ConnectorDefaults

DEFAULTS = ConnectorDefaults(
    events=frozenset({"deposit", "withdrawal", "gameround", "login", "player", "game"}),
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
