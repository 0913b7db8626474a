"""Checks across a whole configuration that no single key can make: secrets, listeners, vendor URLs."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from gateway.config_source import Problems

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.connector import Connector
    from gateway.destination import Destination

PLACEHOLDERS: Final = frozenset({"change-me", "changeme", "change_me", "replace-me", "replaceme", "todo", "xxx"})
"""Values that stand for a secret still to be set (config/gateway.example.yaml writes `change-me`, and
`change-me-feed-password` where a secret must be 16 characters long): the value itself, or the value followed by `-`."""


def is_placeholder(value: str) -> bool:
    """True when `value` is a placeholder of PLACEHOLDERS, alone or as the start of a longer `-`-joined word."""
    word = value.strip().lower()
    return word in PLACEHOLDERS or any(word.startswith(f"{placeholder}-") for placeholder in PLACEHOLDERS)


_WILDCARDS: Final = frozenset({"0.0.0.0", "::", "[::]", ""})  # noqa: S104 - names the wildcard, binds nothing


def check_resolved(
    gateway: GatewayConfig | None, destinations: Sequence[tuple[int, Destination]], problems: Problems
) -> None:
    """Record every cross-key problem: of each destination that bound (by its index), and of the file when it is valid.

    Run even when other keys failed, so one run of check-config reports these too.
    """
    for path, secret in _secrets(gateway, destinations):
        value = secret.get_secret_value()
        if not value.strip():
            problems.error(path, "empty secret: set it (an empty key would only be refused by the vendor)")
        elif is_placeholder(value):
            problems.error(path, f"still the placeholder {value.strip()!r}: set the real secret")
    if gateway is not None:
        _check_listeners(gateway, destinations, problems)


def _secrets(
    gateway: GatewayConfig | None, destinations: Sequence[tuple[int, Destination]]
) -> Iterator[tuple[str, SecretStr]]:
    if gateway is not None:
        yield from _walk(gateway.model_copy(update={"destinations": []}), "")
    for index, destination in destinations:
        where = f"destinations[{index}]"
        for brand, credentials in destination.credentials.items():
            yield from _walk(credentials, f"{where}.credentials.{brand}")
        yield from _walk(destination.config.proxy, f"{where}.proxy")
        yield from _walk(destination.options, f"{where}.options")
        yield from _walk(destination.settings, where)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key, secret) of every SecretStr below `value`."""
    if isinstance(value, SecretStr):
        yield path, value
    elif isinstance(value, BaseModel):
        for key in type(value).model_fields:
            yield from _walk(getattr(value, key), f"{path}.{key}" if path else key)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            yield from _walk(item, f"{path}[{position}]")


def check_base_url(path: str, connector: Connector, base_url: str | None, problems: Problems) -> None:
    """Refuse a base_url that already holds the path the connector appends (every request would get a 404)."""
    api_path = connector.defaults.api_path
    if not api_path or not base_url:
        return
    api = api_path.rstrip("/")
    parts = urlsplit(base_url)
    found = f"{parts.path.rstrip('/')}/".find(f"{api}/")
    if found >= 0:
        root = f"{parts.scheme}://{parts.netloc}{parts.path[:found]}"
        problems.error(
            path,
            f"already holds {api}, which connector {connector.name} appends itself "
            f"(requests would go to {base_url.rstrip('/')}{api}/...); use {root}",
        )


def _listeners(gateway: GatewayConfig, destinations: Sequence[tuple[int, Destination]]) -> Iterator[tuple[str, str]]:
    yield "http.listen", gateway.http.listen
    for index, destination in destinations:
        yield from _listen_keys(destination.settings, f"destinations[{index}]")


def _listen_keys(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for key in type(value).model_fields:
            item = getattr(value, key)
            if key == "listen" and isinstance(item, str):
                yield f"{path}.{key}", item
            else:
                yield from _listen_keys(item, f"{path}.{key}")


def _check_listeners(
    gateway: GatewayConfig, destinations: Sequence[tuple[int, Destination]], problems: Problems
) -> None:
    """Two listeners on one port clash (unless port 0: the system picks); a loopback /metrics misses probes."""
    seen: list[tuple[str, str, int]] = []
    for path, listen in _listeners(gateway, destinations):
        host, _, port_text = listen.rpartition(":")
        port = int(port_text)
        for other_path, other_host, other_port in seen:
            if port and port == other_port and (host == other_host or {host, other_host} & _WILDCARDS):
                problems.error(path, f"port {port} is also {other_path} ({other_host}:{other_port}): they would clash")
        seen.append((path, host, port))
    if _is_loopback(gateway.http.host):
        problems.warning(
            "http.listen",
            f"{gateway.http.listen} is a loopback address: container probes and Prometheus cannot reach /healthz, "
            "/readyz or /metrics (use 0.0.0.0:PORT in a container)",
        )


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["PLACEHOLDERS", "check_base_url", "check_resolved"]
