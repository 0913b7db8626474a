"""Structured logging, configured once: JSON off a terminal, console on one, with secrets scrubbed from every line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

MASK = "**********"
SENSITIVE_KEYS = frozenset({"api_key", "secret_key", "password", "token", "authorization", "x-api-key", "secret"})


class SecretScrubber:
    """A structlog processor that masks sensitive keys and any known secret value wherever it appears in a line."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def register(self, secrets: Iterable[str]) -> None:
        """Add secret values (short ones are ignored: masking 'a' everywhere would wreck every line)."""
        self._secrets.update(secret for secret in secrets if len(secret) >= 4)

    def clean(self, value: Any) -> Any:
        """`value` with every registered secret masked."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {
                key: MASK if str(key).lower() in SENSITIVE_KEYS else self.clean(item) for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.clean(item) for item in value]
        if isinstance(value, BaseException):
            return self.clean(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = MASK if key.lower() in SENSITIVE_KEYS else self.clean(value)
        return event_dict


scrubber = SecretScrubber()


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library (aiokafka, aiohttp) to one format and level."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrubber,
    ]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiokafka logs every reconnect at ERROR; our own lines say what matters.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))


def destination_logger(name: str, destination: str) -> Any:
    """The logger `name` with `destination` on every line, for the objects that serve one destination.

    Resolved at each call like a module's logger, so a later `configure` (or a test capturing logs) still applies;
    `log.bind(destination=...)` would freeze the configuration of the moment it was bound.
    """
    return structlog.get_logger(name, destination=destination)
