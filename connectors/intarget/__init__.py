"""InTarget CRM connector: a feed store built from the event stream, and the feed server InTarget polls."""

from __future__ import annotations

from dataclasses import replace

from connectors.intarget.client import IntargetClient
from connectors.intarget.config import DEFAULTS, IntargetCredentials, IntargetOptions, IntargetSettings
from connectors.intarget.extension import FeedExtension
from connectors.intarget.mapping import map_event
from connectors.intarget.store import Clock
from gateway.connector import ClientContext, ConnectorDefaults
from gateway.extensions import ExtensionContext


class IntargetConnector:
    """The `intarget` connector."""

    name = "intarget"
    credentials_model = IntargetCredentials
    options_model = IntargetOptions
    settings_model = IntargetSettings
    defaults: ConnectorDefaults = replace(DEFAULTS, events=map_event.events)  # the types map_event takes
    map = staticmethod(map_event)
    clock: Clock | None = None  # the store clock; None = the host's (SQLite) or the database's (PostgreSQL)

    def client(self, context: ClientContext) -> IntargetClient:
        """The client that writes batches through the destination's store."""
        return IntargetClient(context)

    def extension(self, context: ExtensionContext) -> FeedExtension:
        """The store, feed server and purge of one destination."""
        return FeedExtension(context, self.clock)


connector = IntargetConnector()

__all__ = ["IntargetConnector", "connector"]
