"""The configuration schema (docs/configuration.md): every section and key; gateway/binding.py reads and binds it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.durations import Duration, DurationMs
from gateway.kafka_security import KafkaSecurity
from gateway.listener import ListenerLimits, ListenerTls

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ANY_BRAND = "*"
"""The tenant of a destination whose connector needs no credentials: it takes events of every brand."""


class StrictModel(BaseModel):
    """Base for configuration sections: unknown keys are errors."""

    # hide_input_in_errors: a failing check must never print the raw section, which may hold secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9108")
    return value


class KafkaConfig(StrictModel):
    """Where events come from, where dead letters go, and how offsets are committed."""

    bootstrap_servers: str | list[str]
    topics: list[str] = Field(min_length=1)
    group_prefix: str = "event-gateway"
    dlq_topic: str
    client_id: str = "event-gateway"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit_interval: Duration = Field(1.0, gt=0, description="seconds between offset commits")
    commit_after_settle: Duration = Field(
        0.2, ge=0, description="seconds: commit this soon after settles (0: only every commit_interval)"
    )
    commit_metadata_max_bytes: int = Field(
        4000, ge=0, le=32767, description="bytes of settled-offset metadata per partition commit (0: plain offsets)"
    )
    lag_interval: Duration = Field(5.0, gt=0, description="seconds between consumer-lag refreshes")
    session_timeout_ms: DurationMs = Field(30000, ge=6000)
    max_poll_interval_ms: DurationMs = Field(300000, ge=10000)
    fetch_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    fetch_max_wait_ms: DurationMs = Field(
        100, ge=1, le=10000, description="longest a fetch waits for records to arrive (a floor under the latency)"
    )
    max_partition_fetch_bytes: int = Field(1024 * 1024, ge=1024)
    dlq_max_message_bytes: int = Field(
        1048588, ge=1024, description="largest dead letter the DLQ topic takes (its max.message.bytes)"
    )
    security: KafkaSecurity = KafkaSecurity()

    @property
    def servers(self) -> list[str]:
        """Bootstrap servers as a list."""
        if isinstance(self.bootstrap_servers, str):
            return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]
        return list(self.bootstrap_servers)


class HttpConfig(StrictModel):
    """The gateway's own HTTP listener: /metrics, /healthz, /readyz."""

    # Outside a container loopback is the safe default; the image sets GATEWAY_HTTP_LISTEN=0.0.0.0:9108 so that probes
    # and Prometheus reach a container whose config leaves http.listen out. A listen in the file always wins.
    listen: str = Field(default_factory=lambda: os.environ.get("GATEWAY_HTTP_LISTEN") or "127.0.0.1:9108")
    tls: ListenerTls | None = None
    limits: ListenerLimits = ListenerLimits()

    @field_validator("listen")
    @classmethod
    def _check(cls, value: str) -> str:
        return _host_port(value)

    @property
    def host(self) -> str:
        """Listen host."""
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        """Listen port."""
        return int(self.listen.rpartition(":")[2])


class LoggingConfig(StrictModel):
    """Log level and renderer (auto = console on a terminal, JSON otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ShutdownConfig(StrictModel):
    """How long SIGTERM/SIGINT waits for in-flight batches before committing what settled and exiting."""

    grace_period: Duration = Field(20.0, ge=0)


class BatchConfig(StrictModel):
    """Batch bounds; an unset bound takes the connector's default."""

    max_events: int | None = Field(None, ge=1)
    max_bytes: int | None = Field(None, ge=1024)
    linger_ms: DurationMs | None = Field(None, ge=0)


class RetryConfig(StrictModel):
    """Retry timing in seconds. There is deliberately no attempt limit: transient faults are waited out."""

    initial: Duration = Field(0.2, gt=0)
    max: Duration = Field(30.0, gt=0)
    retry_after_cap: Duration = Field(300.0, ge=0)
    halt_probe: Duration = Field(30.0, gt=0, description="seconds between probes while halted on credentials")

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.initial > self.max:
            raise ValueError("retry.initial must not exceed retry.max")
        return self


class AdaptiveTimeoutConfig(StrictModel):
    """A request's deadline from the destination's recent response times, within [floor, timeout]
    (gateway.request_deadline)."""

    enabled: bool = True
    floor: Duration = Field(2.0, gt=0, description="seconds: the adaptive deadline is never shorter")
    factor: float = Field(3.0, ge=1, description="the deadline is this many times the percentile")
    percentile: float = Field(99.0, gt=0, le=100, description="of the recent 2xx response times")
    window: int = Field(500, ge=10, le=100_000, description="recent 2xx response times kept")
    min_samples: int = Field(20, ge=1, description="answers seen before the deadline adapts (until then: timeout)")

    @model_validator(mode="after")
    def _enough_room(self) -> AdaptiveTimeoutConfig:
        if self.min_samples > self.window:
            raise ValueError("adaptive_timeout.min_samples must not exceed adaptive_timeout.window")
        return self


class ParkingConfig(StrictModel):
    """Parking (docs/parking.md): a blocked brand's further events wait in a Kafka topic, not in memory, so the other
    brands of the destination go on. Only for destinations with two brands or more."""

    enabled: bool = True
    topic: str | None = Field(None, description="default: <kafka.group_prefix>.<destination>.parked")
    after: Duration = Field(
        10.0, gt=0, description="seconds a brand's backlog stays at its bound before its further events are parked"
    )
    order_patience: Duration | None = Field(
        None,
        gt=0,
        description="seconds a parked event waits, while they make no progress, for older events of its partition "
        "that another process holds (default: max(60s, 2 x retry.halt_probe + 10s))",
    )


class TlsConfig(StrictModel):
    """TLS towards the vendor: verification is on unless switched off explicitly."""

    verify: bool = True
    ca_file: Path | None = None

    @field_validator("ca_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value


class ProxyConfig(StrictModel):
    """An egress proxy for one destination (e.g. a static-IP proxy the vendor allow-lists)."""

    url: str
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/@\s]+(:\d+)?/?$", value):
            raise ValueError("must be http://host:port or https://host:port (put credentials in username/password)")
        return value


class DestinationConfig(BaseModel):
    """One vendor destination. Keys beyond these are the connector's own (e.g. InTarget's store and feed)."""

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    name: str = Field(pattern=_NAME)
    connector: str
    base_url: str | None = None
    credentials: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    events: list[str] | None = None
    batch: BatchConfig = BatchConfig()
    retry: RetryConfig = RetryConfig()
    max_in_flight: int = Field(50000, ge=1)
    max_in_flight_bytes: int = Field(
        32 * 1024 * 1024, ge=64 * 1024, description="bytes held by unsettled messages (values, records, overhead)"
    )
    parking: ParkingConfig = ParkingConfig()
    concurrency: int | None = Field(None, ge=1, le=1024)
    rate_limit: float | None = Field(None, gt=0, description="requests per second")
    timeout: Duration = Field(10.0, gt=0, description="seconds per HTTP request: the cap of adaptive_timeout")
    adaptive_timeout: AdaptiveTimeoutConfig = AdaptiveTimeoutConfig()
    tls: TlsConfig = TlsConfig()
    # A string is the short form of {url: ...} (turned into one before validation): not a union member, so a bad
    # proxy is reported once, as a proxy error, and not again as "not a valid string".
    proxy: ProxyConfig | None = None
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    start_from: str | None = Field(
        None, description="where a new consumer group starts: earliest | latest | an RFC 3339 time (kafka's default)"
    )

    @field_validator("start_from")
    @classmethod
    def _start_from(cls, value: str | None) -> str | None:
        from gateway.start_position import parse_start_from  # noqa: PLC0415 - keeps config free of aiokafka

        return None if value is None else parse_start_from(value)

    @field_validator("credentials")
    @classmethod
    def _hide_credentials(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # Raw credential strings are wrapped at once so no dump or repr of the raw config can show them;
        # the connector's credentials model validates the unwrapped values.
        return {
            brand: {key: SecretStr(item) if isinstance(item, str) else item for key, item in creds.items()}
            for brand, creds in value.items()
        }

    def __repr_args__(self) -> Any:
        # Connector-specific keys (model_extra) may hold secrets too (e.g. a feed password): never shown.
        return [(key, value) for key, value in super().__repr_args__() if key in type(self).model_fields]

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s]+$", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("proxy", mode="before")
    @classmethod
    def _proxy_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("events")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        from gateway.events import EVENT_TYPES  # noqa: PLC0415 - keeps config importable without the event models

        if value is not None:
            unknown = sorted(set(value) - set(EVENT_TYPES))
            if unknown:
                raise ValueError(f"unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
        return value


class GatewayConfig(StrictModel):
    """The whole file."""

    kafka: KafkaConfig
    http: HttpConfig = Field(default_factory=HttpConfig)
    logging: LoggingConfig = LoggingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    destinations: list[DestinationConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        names = [d.name for d in self.destinations]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"destination names must be unique; repeated: {duplicated}")
        return self
