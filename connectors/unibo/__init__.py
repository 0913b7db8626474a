"""Unibo Consumer API connector (batch ingest of gameround, deposit, withdraw, player, game and login items)."""

from __future__ import annotations

from dataclasses import replace

from connectors.unibo.client import UniboClient
from connectors.unibo.config import DEFAULTS, UniboCredentials, UniboOptions
from connectors.unibo.mapping import map_event
from gateway.connector import ClientContext, ConnectorDefaults, NoSettings


class UniboConnector:
    """The `unibo` connector."""

    name = "unibo"
    credentials_model = UniboCredentials
    options_model = UniboOptions
    settings_model = NoSettings
    defaults: ConnectorDefaults = replace(DEFAULTS, events=map_event.events)  # the types map_event takes
    map = staticmethod(map_event)

    def client(self, context: ClientContext) -> UniboClient:
        """Build the HTTP client for one destination."""
        return UniboClient(context)


connector = UniboConnector()

__all__ = ["UniboConnector", "connector"]
