"""Connector extensions: HTTP routes and background parts a connector adds beside its pipeline (feeds, callbacks)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import KafkaConfig
    from gateway.destination import Destination
    from gateway.metrics import Metrics


@dataclass(frozen=True, slots=True)
class ExtensionContext:
    """What the core hands a connector to build its extension for one destination."""

    destination: Destination
    kafka: KafkaConfig
    metrics: Metrics
    stopping: asyncio.Event
    serve: bool = True
    """False in `gateway replay`: build only what the client needs (`shared`), no listener, producer or routes,
    since the running gateway already serves them (and holds their ports)."""


@dataclass(slots=True)
class Extension:
    """A connector's additions for one destination.

    `routes` join the gateway's own HTTP listener (registered before it starts; handlers answer 503 until `start`
    has run). `start` runs after the dead-letter producer is up and before the pipelines; `stop` runs after the
    pipelines drained. `shared` is handed to the connector's client through ClientContext.extension (e.g. a store
    that both the client writes and a feed server reads).
    """

    routes: Sequence[web.AbstractRouteDef] = ()
    shared: object | None = None

    async def start(self) -> None:
        """Start what the extension runs (override in a subclass)."""

    async def stop(self) -> None:
        """Stop it, idempotently (override in a subclass)."""


@runtime_checkable
class ExtendsGateway(Protocol):
    """Implemented by a connector that adds routes or background parts; the core calls it once per destination."""

    def extension(self, context: ExtensionContext) -> Extension | None:
        """The destination's extension, or None when its configuration enables none."""
        ...


def extensions_of(contexts: Sequence[ExtensionContext]) -> dict[str, Extension]:
    """Destination name → extension, for the connectors that provide one."""
    found: dict[str, Extension] = {}
    for context in contexts:
        connector = context.destination.connector
        if isinstance(connector, ExtendsGateway):
            extension = connector.extension(context)
            if extension is not None:
                found[context.destination.name] = extension
    return found
