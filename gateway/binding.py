"""Reading a configuration: YAML with ${VAR} interpolation, validated entirely at startup, destinations bound to
their connectors through the registry (docs/configuration.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from gateway import registry
from gateway.config import ANY_BRAND, DestinationConfig, GatewayConfig
from gateway.config_checks import check_base_url, check_resolved
from gateway.config_source import Problems, interpolate, read_yaml
from gateway.destination import BatchLimits, Destination, ResolvedConfig
from gateway.errors import ConfigError
from gateway.kafka_security import client_security_kwargs


def _unwrapped(values: dict[str, Any]) -> dict[str, Any]:
    return {key: item.get_secret_value() if isinstance(item, SecretStr) else item for key, item in values.items()}


def _bind(index: int, config: DestinationConfig, problems: Problems) -> Destination | None:
    """The destination with its connector bound, or None with every problem recorded."""
    where = f"destinations[{index}]"
    try:
        connector = registry.get(config.connector)
    except ConfigError as error:
        problems.error(f"{where}.connector", str(error))
        return None
    check_base_url(f"{where}.base_url", connector, config.base_url or connector.defaults.base_url, problems)
    failed = len(problems.errors)  # a base_url with the API path still binds: its secrets get checked too
    credentials = {
        brand: problems.validate(connector.credentials_model, _unwrapped(creds), f"{where}.credentials.{brand}")
        for brand, creds in config.credentials.items()
    }
    options = problems.validate(connector.options_model, config.options, f"{where}.options")
    common = type(config).model_fields
    settings = problems.validate(connector.settings_model, config.model_extra or {}, where, known=common)
    if not credentials and connector.credentials_model.model_fields:
        problems.error(f"{where}.credentials", "at least one brand is required, e.g. `default: {...}`")
    if not credentials:
        # A connector that needs no credentials (e.g. InTarget's store) takes every brand, as one tenant.
        credentials = {ANY_BRAND: connector.credentials_model()}
    defaults = connector.defaults
    unsupported = sorted(set(config.events or ()) - defaults.events)
    if unsupported:
        problems.error(
            f"{where}.events",
            f"connector {connector.name} does not take {unsupported}; it takes {sorted(defaults.events)}",
        )
    if len(problems.errors) > failed:
        return None
    if config.base_url is None and defaults.base_url:
        config = config.model_copy(update={"base_url": defaults.base_url})  # the vendor's production URL
    batch = BatchLimits(
        max_events=config.batch.max_events or defaults.max_events,
        max_bytes=config.batch.max_bytes or defaults.max_bytes,
        linger=(config.batch.linger_ms if config.batch.linger_ms is not None else defaults.linger_ms) / 1000,
    )
    return Destination(
        config=config,
        connector=connector,
        credentials=credentials,
        options=options,
        settings=settings,
        events=frozenset(config.events) if config.events is not None else defaults.events,
        batch=batch,
        concurrency=config.concurrency or defaults.concurrency,
    )


def _salvaged(entry: Any) -> DestinationConfig | None:
    """A destination validated without the keys that fail (they are reported with the file's errors), or None."""
    try:
        return DestinationConfig.model_validate(entry)
    except ValidationError as error:
        if not isinstance(entry, dict):
            return None
        failing = {item["loc"][0] for item in error.errors(include_input=False) if item["loc"]}
        try:
            return DestinationConfig.model_validate({k: v for k, v in entry.items() if k not in failing})
        except ValidationError:
            return None


def load(path: str | Path, env: Mapping[str, str] | None = None) -> ResolvedConfig:
    """Read, interpolate and validate a configuration file."""
    return parse(read_yaml(path), env)


def parse(data: Any, env: Mapping[str, str] | None = None) -> ResolvedConfig:
    """Validate a parsed YAML tree; raises ConfigError naming every offending key, all of them in one message."""
    if not isinstance(data, dict):
        raise ConfigError("<root>: the configuration must be a mapping")
    problems = Problems()
    data = interpolate(data, os.environ if env is None else env, problems=problems)
    gateway = problems.validate(GatewayConfig, data, "")
    if gateway is not None:
        try:
            client_security_kwargs(gateway.kafka.security)  # loads the TLS files now: a bad key fails at startup
        except ConfigError as error:
            problems.error("", str(error))
        configs: list[DestinationConfig | None] = list(gateway.destinations)
    else:
        # The file has errors, but each destination can still be bound without its failing keys (already reported
        # with the file's), so that one run reports its credentials, options and cross-key problems too.
        raw = data.get("destinations")
        configs = [_salvaged(entry) for entry in (raw if isinstance(raw, list) else [])]
    bound = [(index, _bind(index, config, problems)) for index, config in enumerate(configs) if config is not None]
    indexed = [(index, destination) for index, destination in bound if destination is not None]
    check_resolved(gateway, indexed, problems)
    destinations = tuple(destination for _, destination in indexed)
    problems.check()
    assert gateway is not None
    return ResolvedConfig(gateway=gateway, destinations=destinations, warnings=tuple(problems.warnings))
