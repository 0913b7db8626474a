"""Connector extensions: only connectors that implement the hook get one, and None means none is enabled."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.binding import parse
from gateway.extensions import ExtendsGateway, Extension, ExtensionContext, extensions_of
from gateway.metrics import Metrics


class _Extending:
    """Wraps a real connector and adds an extension when its destination is called `with-routes`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def extension(self, context: ExtensionContext) -> Extension | None:
        if context.destination.name != "with-routes":
            return None

        async def hello(_: web.Request) -> web.Response:
            return web.Response(text="hi")

        return Extension(routes=[web.get("/hello", hello)], shared=context.destination.name)


_CREDENTIALS = {"default": {"api_key": "k"}}


def _contexts(wrap: bool) -> list[ExtensionContext]:
    resolved = parse(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
            "destinations": [
                {
                    "name": name,
                    "connector": "unibo",
                    "base_url": "http://127.0.0.1:1",
                    "credentials": {"default": {"api_key": "k"}},
                }
                for name in ("with-routes", "plain")
            ],
        }
    )
    metrics = Metrics(CollectorRegistry())
    contexts = []
    for destination in resolved.destinations:
        if wrap:
            object.__setattr__(destination, "connector", _Extending(destination.connector))
        contexts.append(ExtensionContext(destination, resolved.gateway.kafka, metrics, asyncio.Event()))
    return contexts


def test_connectors_without_the_hook_get_no_extension() -> None:
    """The Unibo connector adds nothing, so the gateway mounts nothing for it."""
    assert extensions_of(_contexts(wrap=False)) == {}


def test_an_extending_connector_gets_one_extension_per_enabling_destination() -> None:
    """A connector with `extension` is asked per destination; None (not enabled) is left out."""
    contexts = _contexts(wrap=True)
    assert isinstance(contexts[0].destination.connector, ExtendsGateway)
    found = extensions_of(contexts)
    assert list(found) == ["with-routes"]
    assert found["with-routes"].shared == "with-routes"
    assert [route.path for route in found["with-routes"].routes] == ["/hello"]  # type: ignore[attr-defined]
