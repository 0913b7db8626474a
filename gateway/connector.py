"""The connector contract: what a vendor folder in connectors/ supplies to the core pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict

from gateway.immutable import immutable

if TYPE_CHECKING:
    from gateway.config import DestinationConfig
    from gateway.events import Event
    from gateway.http_client import HttpTransport
    from gateway.outcomes import SendResult


@immutable
class VendorRecord:
    """One item in the vendor's schema, made by a connector's pure mapping from one normalized event.

    `body` is the item serialized once, exactly as it goes on the wire; the batcher sizes batches by it.
    `key` orders delivery: records with the same key reach the vendor in source order. `route` tells the
    connector's client which endpoint the record is for when the vendor has several.
    Immutable to the type checker, cheap to build at run time (see gateway/immutable.py). Mappings build it with
    positional arguments, in field order: a keyword call to a class builds a dict for `__init__`, about 1,900
    instructions more a record.
    """

    route: str
    body: bytes
    key: str
    record_id: str


def record_body(value: Any) -> bytes:
    """Serialize one record's JSON for a VendorRecord body; datetimes become RFC 3339 with a `Z` (they are UTC).

    orjson returns its bytes inside a ~4 KiB allocation; the `%b` copy is exact-size (tracemalloc: 4 KiB → 240 B
    per record), which is what keeps tens of thousands of in-flight records within the memory budget.
    """
    return b"%b" % orjson.dumps(value, option=orjson.OPT_UTC_Z)


OptionsT = TypeVar("OptionsT")


class MapDispatch(Generic[OptionsT]):
    """A connector's pure mapping: one mapper per event type it takes, and nothing for any other type.

    The types it dispatches are the connector's default `events` (`ConnectorDefaults.events`), so a mapper added here
    is taken and sent without a second list to keep in step.
    """

    __slots__ = ("_mappers",)

    def __init__(self, mappers: Mapping[str, Callable[[Event, OptionsT], Sequence[VendorRecord]]]) -> None:
        self._mappers = dict(mappers)

    @property
    def events(self) -> frozenset[str]:
        """The event types this mapping takes."""
        return frozenset(self._mappers)

    def __call__(self, event: Event, options: OptionsT) -> Sequence[VendorRecord]:
        """The vendor records for one event; empty when the vendor does not take its type (or this event)."""
        mapper = self._mappers.get(event.type)
        return mapper(event, options) if mapper is not None else ()


@dataclass(frozen=True, slots=True)
class ConnectorDefaults:
    """A connector's defaults for the per-destination options the operator leaves out."""

    max_events: int
    max_bytes: int
    linger_ms: int
    concurrency: int
    api_path: str = ""
    """The path the client appends to `base_url` (e.g. /api/v1): check-config refuses a base_url that holds it."""
    base_url: str = ""
    """The vendor's production URL: the destination's `base_url` when it sets none (check-config shows it)."""
    events: frozenset[str] = frozenset()
    """The event types the connector takes, all sent unless a destination lists `events`: its MapDispatch's types,
    set where the connector joins the two (`replace(DEFAULTS, events=map_event.events)`)."""


class NoSettings(BaseModel):
    """Connector-specific destination keys, for connectors that have none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class ClientContext:
    """What the core hands a connector to build its client."""

    destination: DestinationConfig
    options: Any
    settings: Any
    http: HttpTransport
    shared: Any = None  # what the connector's Extension shares with its client (gateway/extensions.py), if any


class VendorClient(Protocol):
    """Builds the vendor's requests, authenticates them and classifies the answers.

    A client whose vendor takes one request per record or per player (not one per batch) sets the optional class
    attribute `per_key_requests = True`: the delivery engine then hands it the records of one ordering key per send
    and delivers a batch's keys concurrently, each retrying on its own (see `sends_per_key`).
    """

    async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
        """Send records of one tenant; never raise for a vendor or network failure, classify it instead."""
        ...

    async def close(self) -> None:
        """Release what the client owns (idempotent)."""
        ...


class Connector(Protocol):
    """A vendor: configuration models, a pure mapping, and a client. It cannot change batching, retries or offsets."""

    # Read-only members, so a connector may narrow them (e.g. credentials_model = UniboCredentials).
    @property
    def name(self) -> str:
        """The `connector:` value in the configuration."""
        ...

    @property
    def credentials_model(self) -> type[BaseModel]:
        """One tenant's credentials (SecretStr for secrets)."""
        ...

    @property
    def options_model(self) -> type[BaseModel]:
        """The destination's `options:` block."""
        ...

    @property
    def settings_model(self) -> type[BaseModel]:
        """Connector-specific destination keys beyond the common ones."""
        ...

    @property
    def defaults(self) -> ConnectorDefaults:
        """Defaults for what the operator leaves out."""
        ...

    def map(self, event: Event, options: Any) -> Sequence[VendorRecord]:
        """Map one event to vendor records; pure (no I/O, no clock). Empty means this vendor does not take it.

        Raises a gateway.errors.EventError subclass when the event cannot be expressed for this vendor.
        """
        ...

    def client(self, context: ClientContext) -> VendorClient:
        """Build the client for one destination."""
        ...


def sends_per_key(client: VendorClient) -> bool:
    """Whether the client asks for one ordering key's records per send (its optional `per_key_requests`)."""
    return getattr(client, "per_key_requests", False) is True
