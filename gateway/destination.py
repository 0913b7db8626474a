"""A destination bound to its connector with every default resolved, and the whole resolved configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from gateway.config import DestinationConfig, GatewayConfig
from gateway.connector import Connector
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Resolved batch bounds."""

    max_events: int
    max_bytes: int
    linger: float


@dataclass(frozen=True)
class Destination:
    """A destination with its connector bound and every default resolved: what a pipeline runs from."""

    config: DestinationConfig
    connector: Connector
    credentials: Mapping[str, Any]
    options: Any
    settings: Any
    events: frozenset[str]
    batch: BatchLimits
    concurrency: int

    @property
    def name(self) -> str:
        """Destination name."""
        return self.config.name

    def group_id(self, prefix: str) -> str:
        """This destination's consumer group."""
        return f"{prefix}.{self.name}"

    def parking_topic(self, prefix: str) -> str:
        """The topic a blocked brand's events are parked in."""
        return self.config.parking.topic or f"{prefix}.{self.name}.parked"

    @property
    def parks(self) -> bool:
        """Whether this destination parks a blocked brand's events (parking enabled, and two brands or more)."""
        return self.config.parking.enabled and len(self.credentials) > 1

    def describe(self) -> dict[str, Any]:
        """A printable summary with every secret masked."""
        return {
            "name": self.name,
            "connector": self.connector.name,
            "base_url": self.config.base_url,
            "events": sorted(self.events),
            "start_from": self.config.start_from,  # None: kafka.auto_offset_reset (only for a new group)
            "tenants": {brand: _masked(creds) for brand, creds in self.credentials.items()},
            "batch": {
                "max_events": self.batch.max_events,
                "max_bytes": self.batch.max_bytes,
                "linger_ms": round(self.batch.linger * 1000),
            },
            "concurrency": self.concurrency,
            "max_in_flight": self.config.max_in_flight,
            "max_in_flight_bytes": self.config.max_in_flight_bytes,
            "parking": self.config.parking.model_dump(),
            "rate_limit": self.config.rate_limit,
            "timeout": self.config.timeout,
            "adaptive_timeout": self.config.adaptive_timeout.model_dump(),
            "retry": self.config.retry.model_dump(),
            "tls": {"verify": self.config.tls.verify, "ca_file": str(self.config.tls.ca_file or "") or None},
            "proxy": _masked(self.config.proxy) if isinstance(self.config.proxy, BaseModel) else None,
            "options": _masked(self.options),
            "settings": _masked(self.settings),
        }


@dataclass(frozen=True)
class ResolvedConfig:
    """The validated file plus its destinations with connectors bound."""

    gateway: GatewayConfig
    destinations: tuple[Destination, ...]
    warnings: tuple[str, ...] = ()
    """What validates but is probably not meant (e.g. a loopback listener in a container); check-config prints it."""

    def secrets(self) -> list[str]:
        """Every secret value in the configuration, for the log and dead-letter scrubber."""
        found: list[str] = []

        def walk(value: object) -> None:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for key in type(value).model_fields:
                    walk(getattr(value, key))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self.gateway)
        for destination in self.destinations:
            walk(dict(destination.credentials))
            walk(destination.options)
            walk(destination.settings)
        return found

    def destination(self, name: str) -> Destination:
        """The destination called `name`."""
        for destination in self.destinations:
            if destination.name == name:
                return destination
        raise ConfigError(f"no destination named {name!r}; configured: {[d.name for d in self.destinations]}")


def _masked(model: Any) -> Any:
    if isinstance(model, BaseModel):
        return {key: _masked(getattr(model, key)) for key in type(model).model_fields}
    if isinstance(model, SecretStr):
        return "**********" if model.get_secret_value() else ""
    if isinstance(model, dict):
        return {key: _masked(value) for key, value in model.items()}
    if isinstance(model, list | tuple):
        return [_masked(value) for value in model]
    if isinstance(model, Path):
        return str(model)
    return model
