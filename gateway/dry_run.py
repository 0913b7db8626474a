"""`gateway validate-event` and `gateway map`: what the gateway makes of events, with no Kafka and nothing sent."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from yarl import URL

from gateway.connector import ClientContext, VendorRecord
from gateway.delivery import Tenant
from gateway.destination import Destination
from gateway.errors import ConfigError, EventError
from gateway.events import Event, decode
from gateway.http_client import HttpResponse, HttpTransport
from gateway.logs import scrubber
from gateway.routing import Router

MASK: Final = "**********"
_SECRET_HEADER: Final = re.compile(r"key|auth|token|secret|signature|password|cookie", re.IGNORECASE)


def numbered_events(lines: Iterable[bytes]) -> Iterator[tuple[int, Event | EventError]]:
    """(line number, the event or why it is not one) for each non-blank line, decoded as the pipeline decodes."""
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            yield number, decode(raw)
        except EventError as error:
            yield number, error


@dataclass(frozen=True, slots=True)
class CapturedRequest:
    """One request exactly as the connector's client built it (the body byte for byte)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        """The request as an HTTP-like block, secret headers masked."""
        lines = [f"{self.method} {self.url}"]
        lines += [f"{name}: {MASK if _SECRET_HEADER.search(name) else value}" for name, value in self.headers.items()]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", "replace")


@dataclass
class CapturingTransport:
    """Stands in for the destination's HttpTransport: records each request and answers 200, sending nothing.

    The connector's own client builds, signs and orders the requests, so what is printed is what it would send.
    """

    requests: list[CapturedRequest] = field(default_factory=list)

    async def request(
        self, method: str, url: str | URL, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """Record the request (a yarl URL as its wire spelling); answer 200 with an empty body."""
        self.requests.append(CapturedRequest(method, str(url), dict(headers or {}), body or b""))
        return HttpResponse(200)

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one input line becomes at a destination: requests, stored records, or why nothing goes."""

    line: int
    summary: str
    requests: tuple[CapturedRequest, ...] = ()
    records: tuple[VendorRecord, ...] = ()
    reason: str | None = None  # the dead-letter reason, when the pipeline would dead-letter it
    routed: int = 0  # vendor records the event maps to

    @property
    def failed(self) -> bool:
        """Whether the pipeline would dead-letter it."""
        return self.reason is not None


class DryRun:
    """One destination's route, map and request building, for events read from a file instead of Kafka."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._router = Router(destination, {brand: Tenant(brand, c) for brand, c in destination.credentials.items()})
        self._transport = CapturingTransport()
        context = ClientContext(
            destination=destination.config,
            options=destination.options,
            settings=destination.settings,
            http=cast(HttpTransport, self._transport),
        )
        try:
            self._client: Any = destination.connector.client(context)
        except ConfigError:
            # The connector's client needs a running part (InTarget's feed store): show what it would store.
            self._client = None

    async def map(self, line: int, parsed: Event | EventError) -> Mapped:
        """Route and map one event through the pipeline's own route (gateway.routing), then let the connector's
        client build its requests."""
        destination = self.destination
        if isinstance(parsed, EventError):
            return Mapped(line, f"dead letter ({parsed.reason}): {parsed.detail}", reason=parsed.reason)
        event = parsed
        label = f"{event.type} {event.event_id}"
        if not self._router.takes(event):
            taken = sorted(destination.events)
            return Mapped(line, f"{label}: not taken by {destination.name} (filtered; it takes {taken})")
        try:
            route = self._router.route_event(event)
        except EventError as error:
            return Mapped(line, f"{label}: dead letter ({error.reason}): {error.detail}", reason=error.reason)
        if route is None:
            return Mapped(line, f"{label}: nothing to send (the connector does not take this event)")
        _, tenant, mapped = route
        records = tuple(mapped)
        if self._client is None:
            return Mapped(line, f"{label}: {len(records)} record(s) stored", records=records, routed=len(records))
        self._transport.requests.clear()
        await self._client.send(tenant.credentials, records)
        requests = tuple(self._transport.requests)
        return Mapped(line, f"{label}: {len(requests)} request(s)", requests=requests, routed=len(records))

    async def close(self) -> None:
        """Release the connector's client."""
        if self._client is not None:
            await self._client.close()


def render(mapped: Mapped) -> str:
    """A block of text for one input line, secrets masked."""
    parts = [f"# line {mapped.line}: {mapped.summary}"]
    parts += [request.text() for request in mapped.requests]
    parts += [
        f"{record.route} (key {record.key}, id {record.record_id}): {record.body.decode()}" for record in mapped.records
    ]
    return cast(str, scrubber.clean("\n\n".join(parts))) + "\n"
