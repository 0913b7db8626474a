"""Structured logging, configured once: JSON off a terminal, console on one, with secrets scrubbed from every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, TextIO

import orjson
import structlog

MASK = "**********"
SENSITIVE_KEYS = frozenset({"api_key", "secret_key", "password", "token", "authorization", "x-api-key", "secret"})


_PLAIN: Final = (int, float, bool, type(None))
"""Value types that cannot hold a secret: never scanned (most fields of a log line are counts and durations)."""
_MAX_REMEMBERED_KEYS: Final = 4096


class SecretScrubber:
    """A structlog processor that masks sensitive keys and any known secret value wherever it appears in a line.

    Cheap on every line: numbers pass untouched, a key's verdict is remembered, and a string is searched once for all
    the secrets together (one compiled pattern, longest secret first) rather than once per secret.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._sensitive: dict[str, bool] = {}

    def register(self, secrets: Iterable[str]) -> None:
        """Add secret values (short ones are ignored: masking 'a' everywhere would wreck every line)."""
        self._secrets.update(secret for secret in secrets if len(secret) >= 4)
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)  # a secret holding another is masked whole
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def _mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or pattern.search(text) is None:
            return text
        return pattern.sub(MASK, text)

    def clean(self, value: Any) -> Any:
        """`value` with every registered secret masked."""
        if isinstance(value, str):
            return self._mask(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, dict):
            return {key: MASK if self._is_sensitive(str(key)) else self.clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(item) for item in value]
        if isinstance(value, BaseException):
            return self._mask(f"{type(value).__name__}: {value}")
        return value

    def _is_sensitive(self, key: str) -> bool:
        verdict = self._sensitive.get(key)
        if verdict is None:
            verdict = key.lower() in SENSITIVE_KEYS
            if len(self._sensitive) < _MAX_REMEMBERED_KEYS:  # keys come from code, but dict keys may come from data
                self._sensitive[key] = verdict
        return verdict

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if self._is_sensitive(key):
                event_dict[key] = MASK
            elif type(value) is str:
                event_dict[key] = self._mask(value)
            elif not isinstance(value, _PLAIN):
                event_dict[key] = self.clean(value)
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
    # No line renders the caller's file and line, thread or process: the standard library need not look them up for
    # every record (the logging HOWTO's "Optimization"; the caller lookup walks the stack).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
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
