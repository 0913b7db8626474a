"""Enable3's additions to the gateway: ambassador endpoints and the withdrawal callback, each off unless configured."""

from __future__ import annotations

import structlog
from aiohttp import web

from connectors.enable3.ambassador import Ambassador
from connectors.enable3.callback import WithdrawalCallback
from connectors.enable3.config import Enable3Settings
from gateway.extensions import Extension, ExtensionContext
from gateway.listener import Listener

log = structlog.get_logger("connectors.enable3.extension")


class Enable3Extension(Extension):
    """Mounts the enabled parts' routes and starts and stops what they own."""

    def __init__(self, ambassador: Ambassador | None, callback: WithdrawalCallback | None) -> None:
        own_listener = callback is not None and callback.settings.listen is not None
        routes = [*(ambassador.routes() if ambassador else ())]
        if callback is not None and not own_listener:
            routes += callback.routes()
        super().__init__(routes=routes)
        self.ambassador = ambassador
        self.callback = callback
        self.callback_listener: Listener | None = None
        self._own_listener = own_listener

    async def start(self) -> None:
        """Open the ambassador's connections, start the callback's producer and its own listener if configured."""
        if self.ambassador is not None:
            await self.ambassador.start()
        if self.callback is not None:
            await self.callback.start()
            if self._own_listener:
                self.callback_listener = await _serve_alone(self.callback)

    async def stop(self) -> None:
        """Close all, idempotently."""
        listener, self.callback_listener = self.callback_listener, None
        if listener is not None:
            await listener.stop()
        if self.callback is not None:
            await self.callback.stop()
        if self.ambassador is not None:
            await self.ambassador.stop()


async def _serve_alone(callback: WithdrawalCallback) -> Listener:
    """The callback on a listener of its own: exposing it to Enable3 exposes neither /metrics nor the ambassador."""
    settings = callback.settings
    assert settings.listen is not None
    host, _, port = settings.listen.rpartition(":")
    app = web.Application()
    app.add_routes(callback.routes())
    listener = Listener(app, host, int(port), settings.limits, settings.tls)
    await listener.start()
    log.info("withdrawal callback listening on its own listener", url=listener.url)
    return listener


def build_extension(context: ExtensionContext) -> Enable3Extension | None:
    """The destination's extension, or None when neither part is enabled."""
    destination = context.destination
    settings = destination.settings
    assert isinstance(settings, Enable3Settings)
    ambassador = Ambassador(destination, settings.ambassador, context.metrics) if settings.ambassador.enabled else None
    callback = None
    if settings.withdrawal_callback is not None:
        callback = WithdrawalCallback(
            destination.name, settings.withdrawal_callback, context.kafka, context.metrics, context.stopping
        )
    if ambassador is None and callback is None:
        return None
    return Enable3Extension(ambassador, callback)
