"""What the devkit knows of a vendor stand-in: how `gateway sandbox` serves it, how the demo sets it up and reads it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from devkit.sandbox.faults import FaultInjector
from gateway.connector import VendorRecord


class Sandbox(Protocol):
    """A push vendor's sandbox: an aiohttp app with fault injection."""

    faults: FaultInjector

    def app(self) -> web.Application:
        """The aiohttp application serving the sandbox."""
        ...


S = TypeVar("S", bound=Sandbox)


@dataclass(frozen=True, slots=True)
class Setting:
    """A vendor-specific `gateway sandbox` option (`--<vendor>-<name>`), e.g. UserWise's company secret."""

    default: str
    help: str


@dataclass(frozen=True)
class SandboxKind(Generic[S]):
    """A push vendor's sandbox, named like its connector (`--<name>-port`, `--<name>-key` in `gateway sandbox`)."""

    name: str
    port: int
    """Where `gateway sandbox` serves it unless told otherwise."""
    build: Callable[[Mapping[str, str], Mapping[str, str], int | None], S]
    """A sandbox from accepted keys (api key -> tenant), the settings' values and a fault seed."""
    credentials: Callable[[str, Mapping[str, str]], dict[str, str]]
    """A destination's credentials for one accepted key and the settings' values."""
    endpoints: tuple[str, ...]
    """What `gateway sandbox` prints under the sandbox's URL (`{url}` is its base URL)."""
    received: Callable[[S, str], set[str]]
    """The ids a tenant's log holds, as `expected_id` spells them."""
    arrivals: Callable[[S, str], dict[str, float]]
    """id -> when the sandbox first stored it (time.time())."""
    expected_id: Callable[[VendorRecord], str | None]
    """The id a record shows up under in `received`; None: not checked by id."""
    refuse: Callable[[S, set[str]], None]
    """Make the sandbox refuse these ids (a bad item, dead-lettered)."""
    settings: Mapping[str, Setting] = field(default_factory=dict)
    destination: Mapping[str, Any] = field(default_factory=dict)
    """Destination keys the demo adds beyond url and credentials (e.g. concurrency)."""

    def defaults(self) -> dict[str, str]:
        """Every setting at its default value."""
        return {name: setting.default for name, setting in self.settings.items()}


class FeedReader(Protocol):
    """A pull vendor's stand-in: reads back what the gateway serves, as the vendor would."""

    how: str
    """How "received" is observed, for the demo's report."""

    def start(self) -> None:
        """Start reading from now on (when the traffic starts)."""

    async def stop(self) -> None:
        """Stop reading."""

    def received(self) -> set[str]:
        """The ids read so far, as `expected_id` spells them."""
        ...

    def expected_id(self, record: VendorRecord) -> str | None:
        """The id a record shows up under; None: not checked by id."""
        ...


@dataclass(frozen=True)
class ReaderKind:
    """A pull vendor's stand-in for the demo: the gateway serves the vendor's feeds and a reader reads them back."""

    name: str
    destination: Callable[[Path, int], dict[str, Any]]
    """The destination's keys beyond name and connector, from a work directory and the port to serve feeds on."""
    reader: Callable[[int], FeedReader]
    """A reader of the feeds served on that port."""
