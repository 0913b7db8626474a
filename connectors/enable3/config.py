"""Enable3 destination settings: the per-tenant API key, mapping options, the ambassador and callback keys, defaults."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.connector import ConnectorDefaults
from gateway.durations import Duration
from gateway.listener import ListenerLimits, ListenerTls
from gateway.secret_rules import long_enough

DEFAULTS = ConnectorDefaults(
    # One request per event: a lane's batch is sent record by record, so a batch only amortises the lane's
    # bookkeeping. Small batches and a short linger keep latency low; throughput comes from the lanes.
    max_events=50,
    max_bytes=256 * 1024,
    linger_ms=5,
    concurrency=32,
    api_path="/api/v1",  # every endpoint is under it (client.ENDPOINTS)
    base_url="https://integration.enable3.io",
)

# Placeholders of the segment body template (see SEGMENT_TEMPLATE and the README).
USER_ID = "{userId}"
SEGMENTS = "{segments}"
SEGMENT = "{segment}"
# ASSUMPTION: Enable3's public documents say the segment endpoints take "a JSON array" without naming its fields.
# The default sends one object per segment; operators set `options.segment_template` once Enable3 confirms the shape.
SEGMENT_TEMPLATE: list[dict[str, str]] = [{"userId": USER_ID, "segment": SEGMENT}]
# Placeholders of the revenue body template.
REQUEST_ID = "{requestId}"
REVENUE = "{revenue}"
DATE = "{date}"
CURRENCY = "{currency}"
# ASSUMPTION: Enable3's documents name only the path `POST /api/v1/revenue` ("Hold to earn", in USDT); they show no
# body. `{requestId, revenue, date}` is ours, after the event endpoint's style; operators set `options.revenue_template`
# once Enable3 confirms the fields.
REVENUE_TEMPLATE: dict[str, str] = {"requestId": REQUEST_ID, "revenue": REVENUE, "date": DATE}
# A tenant whose /api/v1/event answers 404 to this many different players in a row, with no success in between, is
# halted: Enable3 documents that 404 as "User not found or unauthorized", and users are created on their first event,
# so a run of them means a wrong base_url or key rather than unknown players.
HALT_AFTER_NOT_FOUND = 5


class Enable3Credentials(BaseModel):
    """One tenant (brand) of Enable3: its X-API-KEY."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(min_length=1)


def mentions(template: Any, placeholder: str) -> bool:
    """Whether a JSON template holds `placeholder` as one of its strings."""
    if isinstance(template, str):
        return template == placeholder
    if isinstance(template, dict):
        return any(mentions(value, placeholder) for value in template.values())
    if isinstance(template, list):
        return any(mentions(value, placeholder) for value in template)
    return False


class Enable3Options(BaseModel):
    """How normalized events become Enable3 requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_ids: dict[str, str | None] = Field(
        default_factory=dict,
        description="rename an eventId (deposit, withdrawal, bet, win, login or a custom name); null = not sent",
    )
    statuses: dict[str, list[str]] = Field(
        default_factory=lambda: {"deposit": ["success"], "withdrawal": ["success"], "login": ["success"]},
        description="per type, the statuses sent (deposit/withdrawal: status; login: success or failed)",
    )
    player_revenue: bool = Field(
        False, description="also send revenue events that carry a player_id to the operator-level revenue endpoint"
    )
    segment_template: Any = Field(
        default_factory=lambda: [dict(item) for item in SEGMENT_TEMPLATE],
        description="JSON body of the segment requests; {userId}, {segments} (a list) and {segment} are replaced",
    )

    revenue_template: Any = Field(
        default_factory=lambda: dict(REVENUE_TEMPLATE),
        description="JSON body of POST /api/v1/revenue; {requestId}, {revenue} (a number), {date} and {currency} "
        "are replaced",
    )
    halt_after_not_found: int = Field(
        HALT_AFTER_NOT_FOUND,
        ge=0,
        description="halt the tenant when /api/v1/event answered 404 to this many different players in a row "
        "(a wrong base_url or key); 0 never halts on 404",
    )

    @field_validator("statuses")
    @classmethod
    def _known_types(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - {"deposit", "withdrawal", "login"})
        if unknown:
            raise ValueError(f"statuses apply to deposit, withdrawal and login only, not {unknown}")
        return value

    @field_validator("segment_template")
    @classmethod
    def _places_the_user_and_segments(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("the segment template must be a non-empty JSON array (Enable3 documents an array body)")
        if not mentions(value, USER_ID):
            raise ValueError(f"the segment template must contain {USER_ID!r}")
        if not (mentions(value, SEGMENTS) or mentions(value, SEGMENT)):
            raise ValueError(f"the segment template must contain {SEGMENTS!r} or {SEGMENT!r}")
        if mentions(value, SEGMENT) and not (isinstance(value, list) and len(value) == 1):
            raise ValueError(f"{SEGMENT!r} is for a one-element list template, repeated once per segment")
        return value

    @field_validator("revenue_template")
    @classmethod
    def _places_the_request_and_amount(cls, value: Any) -> Any:
        if not isinstance(value, dict | list) or not value:
            raise ValueError("the revenue template must be a non-empty JSON object or array")
        for placeholder in (REQUEST_ID, REVENUE):
            if not mentions(value, placeholder):
                raise ValueError(f"the revenue template must contain {placeholder!r}")
        return value


class AmbassadorSettings(BaseModel):
    """Local endpoints handing out widget URLs, JWTs and balances; off unless enabled, since they hand out tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    token: SecretStr | None = Field(None, description="bearer token the operator's app must present")
    timeout: Duration = Field(5.0, gt=0, description="seconds per vendor request (one retry on a transient fault)")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough(value, "ambassador.token")

    @model_validator(mode="after")
    def _token_when_enabled(self) -> AmbassadorSettings:
        if self.enabled and self.token is None:
            raise ValueError("ambassador.token is required when ambassador.enabled is true")
        return self


class WithdrawalCallbackSettings(BaseModel):
    """Enable3's signed withdrawal callback, produced unchanged to a Kafka topic keyed by transactionId."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr = Field(description="the HMAC secret agreed with Enable3 (at least 16 characters)")
    topic: str = Field(min_length=1, description="Kafka topic the callbacks are produced to")
    produce_timeout: Duration = Field(10.0, gt=0, description="seconds to wait for Kafka's acknowledgement, else 503")
    listen: str | None = Field(
        None, description="HOST:PORT of a listener of its own (exposing it to Enable3 exposes nothing else)"
    )
    tls: ListenerTls | None = Field(None, description="serve that listener over HTTPS with {cert_file, key_file}")
    limits: ListenerLimits = ListenerLimits()

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9111")
        return value

    @model_validator(mode="after")
    def _tls_needs_listen(self) -> WithdrawalCallbackSettings:
        if self.tls is not None and self.listen is None:
            raise ValueError("withdrawal_callback.tls needs withdrawal_callback.listen (else http.tls applies)")
        return self

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        long_enough(value, "withdrawal_callback.secret")
        return value


class Enable3Settings(BaseModel):
    """Enable3's own destination keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    ambassador: AmbassadorSettings = AmbassadorSettings()
    withdrawal_callback: WithdrawalCallbackSettings | None = None
