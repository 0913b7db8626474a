"""Finds connectors: the built-ins listed here, and third-party ones through the `gateway.connectors` entry points."""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import cast

from gateway.connector import Connector
from gateway.errors import ConfigError

BUILTIN: dict[str, str] = {
    "unibo": "connectors.unibo:connector",
    "enable3": "connectors.enable3:connector",
    "userwise": "connectors.userwise:connector",
    "intarget": "connectors.intarget:connector",
}

ENTRY_POINT_GROUP = "gateway.connectors"


def _load(target: str) -> Connector:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(Connector, getattr(module, attribute))


@cache
def available() -> dict[str, str]:
    """Connector name → import target, built-ins first; an entry point cannot shadow a built-in."""
    found = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


@cache
def get(name: str) -> Connector:
    """The connector called `name`, or a ConfigError listing the known ones."""
    targets = available()
    if name not in targets:
        raise ConfigError(f"unknown connector {name!r}; known: {', '.join(sorted(targets))}")
    return _load(targets[name])
