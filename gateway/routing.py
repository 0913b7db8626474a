"""The route every record takes to a destination, in `gateway run` and `gateway replay` alike: decode, filter by event
type, find the brand's tenant, map to vendor records; `gateway map` takes the same route from decoded events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.connector import VendorRecord
from gateway.delivery import Tenant, tenant_for
from gateway.destination import Destination
from gateway.errors import EventError, InvalidEvent, MappingError, UnknownBrand
from gateway.events import Event, decode
from gateway.logs import destination_logger

Decoder = Callable[[Any], Event]
"""Decodes a Kafka record into its event (or raises EventError), e.g. a shared DecodeCache's `decode`."""

Route = tuple[Event, Tenant, Sequence[VendorRecord]]
"""A routed record: its event, the tenant whose credentials carry it, and the vendor records it maps to (never none)."""


class Router:
    """One destination's decode, filter, tenant and map: written once, so a fix to routing reaches run and replay."""

    __slots__ = ("_connector", "_decode", "_events", "_log", "_map", "_name", "_options", "_tenants")

    def __init__(self, destination: Destination, tenants: Mapping[str, Tenant], decoder: Decoder | None = None) -> None:
        """`decoder` turns a record into its event (a gateway's pipelines share one that reuses their decodes); none
        decodes the value here, one call fewer on the hot path of a gateway with one destination."""
        self._decode = decoder
        self._name = destination.name
        self._connector = destination.connector.name
        self._events = destination.events
        self._tenants = tenants
        self._map = destination.connector.map
        self._options = destination.options
        self._log = destination_logger("gateway.routing", destination.name)

    def route(self, message: Any) -> Route | None:
        """Where a Kafka message's event goes: its route, or None when the destination does not take it (a type it
        does not list, or one the connector maps to nothing).

        Raises EventError, carrying the dead-letter reason, for a message that cannot be decoded or has no tenant here;
        a connector that fails on an event is a bug that must cost that one message: logged, then MappingError.
        """
        try:
            decoder = self._decode
            event = decode(message.value) if decoder is None else decoder(message)
        except EventError:
            raise
        except Exception as error:  # defensive: decode turns every failure it knows into an EventError
            self._log.exception("decoding failed", source=f"{message.topic}/{message.partition}/{message.offset}")
            raise InvalidEvent(f"cannot decode the event ({type(error).__name__})") from error
        return self.route_event(event, message)

    def takes(self, event: Event) -> bool:
        """Whether the destination lists the event's type."""
        return event.type in self._events

    def route_event(self, event: Event, message: Any = None) -> Route | None:
        """`route` for an event already decoded (`gateway map` reads events from a file); `message`, the Kafka record
        it came from if any, names the source in the log line of a connector bug."""
        if event.type not in self._events:
            return None
        try:
            tenant = tenant_for(self._tenants, event.brand)
            if tenant is None:
                raise UnknownBrand(f"brand {event.brand!r} has no credentials at destination {self._name}")
            records = self._map(event, self._options)
        except EventError:
            raise
        except Exception as error:
            source = f"{message.topic}/{message.partition}/{message.offset}" if message is not None else "input"
            self._log.exception("mapping failed", source=source)
            raise MappingError(f"{type(error).__name__} in connector {self._connector}") from error
        return (event, tenant, records) if records else None
