"""UserWise destination settings: the app's API key and company secret, mapping options and batching defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.connector import ConnectorDefaults
from gateway.events import PlayerEvent

DEFAULTS = ConnectorDefaults(
    max_events=1000,  # one batch fans out into one request per player and endpoint run, so batches stay moderate
    max_bytes=4 * 1024 * 1024,
    linger_ms=200,
    concurrency=8,  # lanes; also the bound on requests in flight for the destination (see client.py)
    api_path="/api/v1",  # requests.appuser_url: {base_url}/api/v1/appuser/...
    base_url="https://api.userwise.io",
)

DataType = Literal["string", "boolean", "integer", "float", "datetime"]

# Gateway event kind → UserWise event name (`event_id` in UserWise terms). None sends no event for that kind.
DEFAULT_EVENT_NAMES: dict[str, str | None] = {
    "deposit": "deposit",
    "withdrawal": "withdrawal",
    "bet": "bet",
    "win": "win",
    "login": "login",
}

DEFAULT_REVENUE_TYPES: dict[str, str] = {"deposit": "deposit", "purchase": "purchase", "refund": "refund"}

# Profile fields that leave the gateway by default: no names, email, phone, birthday, city, IP, user agent, tokens.
DEFAULT_PROFILE_FIELDS: tuple[str, ...] = (
    "registered_at",
    "country",
    "currency",
    "locale",
    "timezone",
    "affiliate",
    "traffic_source",
    "status",
    "tags",
    "is_blocked",
    "self_excluded",
    "consent_email",
    "consent_sms",
    "consent_push",
)

PROFILE_FIELDS: frozenset[str] = frozenset(
    name for name in PlayerEvent.model_fields if name not in ("event_id", "type", "occurred_at", "player_id")
) - {"brand", "schema_version", "custom"}
CUSTOM_PREFIX = "custom."


class UserWiseCredentials(BaseModel):
    """One tenant (a UserWise app): its API key, and the company's secret key that signs every request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(min_length=1)
    secret_key: SecretStr = Field(min_length=1)


class UserWiseOptions(BaseModel):
    """How normalized events become UserWise events, revenue events and attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_names: dict[str, str | None] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_NAMES),
        description="UserWise event name per kind (deposit, withdrawal, bet, win, login); null sends no event",
    )
    profile_fields: tuple[str, ...] = Field(
        DEFAULT_PROFILE_FIELDS,
        description="allow-list of `player` fields that become attributes; `custom.NAME` or `custom.*` for custom ones",
    )
    attribute_prefix: str = Field("", description="prepended to every attribute name the gateway sends")
    data_types: dict[str, DataType] = Field(
        default_factory=dict, description="data_type per attribute name (without prefix), overriding the inferred one"
    )
    send_nulls: bool = Field(True, description="an explicit null in a `player` event upserts the attribute as null")
    deposit_revenue: bool = Field(True, description="a successful deposit is also a revenue event")
    revenue_types: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_REVENUE_TYPES),
        description="`revenue_type` for deposits, purchases and refunds",
    )
    last_login: bool = Field(True, description="a successful login upserts the `last_login` attribute")
    max_items_per_request: int = Field(500, ge=1, le=10_000, description="items in one request at most")

    @field_validator("event_names")
    @classmethod
    def _known_event_kinds(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        unknown = set(value) - set(DEFAULT_EVENT_NAMES)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; known: {sorted(DEFAULT_EVENT_NAMES)}")
        if any(name == "" for name in value.values()):
            raise ValueError("an event name must not be empty (use null to send no event)")
        return {**DEFAULT_EVENT_NAMES, **value}

    @field_validator("revenue_types")
    @classmethod
    def _known_revenue_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(DEFAULT_REVENUE_TYPES)
        if unknown:
            raise ValueError(f"unknown revenue kinds {sorted(unknown)}; known: {sorted(DEFAULT_REVENUE_TYPES)}")
        return {**DEFAULT_REVENUE_TYPES, **value}

    @field_validator("profile_fields")
    @classmethod
    def _known_profile_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX):
                continue
            if name not in PROFILE_FIELDS:
                raise ValueError(f"unknown profile field {name!r}; known: {sorted(PROFILE_FIELDS)} or custom.NAME")
        return value
