"""Enable3 integration API connector (mission events, revenue, segments) with ambassador endpoints and a callback."""

from __future__ import annotations

from dataclasses import replace

from connectors.enable3.client import Enable3Client
from connectors.enable3.config import DEFAULTS, Enable3Credentials, Enable3Options, Enable3Settings
from connectors.enable3.extension import Enable3Extension, build_extension
from connectors.enable3.mapping import map_event
from gateway.connector import ClientContext, ConnectorDefaults
from gateway.extensions import ExtensionContext


class Enable3Connector:
    """The `enable3` connector."""

    name = "enable3"
    credentials_model = Enable3Credentials
    options_model = Enable3Options
    settings_model = Enable3Settings
    defaults: ConnectorDefaults = replace(DEFAULTS, events=map_event.events)  # the types map_event takes
    map = staticmethod(map_event)

    def client(self, context: ClientContext) -> Enable3Client:
        """Build the HTTP client for one destination."""
        return Enable3Client(context)

    def extension(self, context: ExtensionContext) -> Enable3Extension | None:
        """The ambassador endpoints and the withdrawal callback, when the destination enables them."""
        return build_extension(context) if context.serve else None


connector = Enable3Connector()

__all__ = ["Enable3Connector", "connector"]
