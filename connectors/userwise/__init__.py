"""UserWise server API connector: per-player events, revenue events and attribute upserts, SHA3-256 request hashing."""

from __future__ import annotations

from dataclasses import replace

from connectors.userwise.client import UserWiseClient
from connectors.userwise.config import DEFAULTS, UserWiseCredentials, UserWiseOptions
from connectors.userwise.mapping import map_event
from gateway.connector import ClientContext, ConnectorDefaults, NoSettings


class UserWiseConnector:
    """The `userwise` connector."""

    name = "userwise"
    credentials_model = UserWiseCredentials
    options_model = UserWiseOptions
    settings_model = NoSettings
    defaults: ConnectorDefaults = replace(DEFAULTS, events=map_event.events)  # the types map_event takes
    map = staticmethod(map_event)

    def client(self, context: ClientContext) -> UserWiseClient:
        """Build the HTTP client for one destination."""
        return UserWiseClient(context)


connector = UserWiseConnector()

__all__ = ["UserWiseConnector", "connector"]
