"""Enable3's additions to the gateway: ambassador endpoints and the withdrawal callback, each off unless configured."""

from __future__ import annotations

from connectors.enable3.ambassador import Ambassador
from connectors.enable3.callback import WithdrawalCallback
from connectors.enable3.config import Enable3Settings
from gateway.extensions import Extension, ExtensionContext


class Enable3Extension(Extension):
    """Mounts the enabled parts' routes and starts and stops what they own."""

    def __init__(self, ambassador: Ambassador | None, callback: WithdrawalCallback | None) -> None:
        routes = [*(ambassador.routes() if ambassador else ()), *(callback.routes() if callback else ())]
        super().__init__(routes=routes)
        self.ambassador = ambassador
        self.callback = callback

    async def start(self) -> None:
        """Open the ambassador's connections and start the callback's producer."""
        if self.ambassador is not None:
            await self.ambassador.start()
        if self.callback is not None:
            await self.callback.start()

    async def stop(self) -> None:
        """Close both, idempotently."""
        if self.callback is not None:
            await self.callback.stop()
        if self.ambassador is not None:
            await self.ambassador.stop()


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
