"""Retrying until it works: the attempt count and backoff of every loop that waits out Kafka, a store or a vendor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.backoff import FullJitterBackoff
from gateway.waits import wait_event


@dataclass(slots=True)
class Attempts:
    """A retry loop's failures so far and the backoff they earn: each one waits longer, up to the backoff's maximum,
    until progress resets the count (the backoff strategy object of the Airbyte CDK's retry loops)."""

    backoff: FullJitterBackoff
    count: int = 0

    def failed(self, retry_after: float | None = None) -> float:
        """Count a failure; the seconds to wait before the next attempt (a vendor's Retry-After wins, within bounds)."""
        delay = self.backoff.delay(self.count, retry_after)
        self.count += 1
        return delay

    def reset(self) -> None:
        """Progress: the next failure waits the shortest delay again."""
        self.count = 0


def error_class(error: BaseException) -> str:
    """An error as its class name: never its message, which may hold an address or a secret."""
    return type(error).__name__


async def retry(
    call: Callable[[], Awaitable[object]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    backoff: FullJitterBackoff,
    log: Any,
    message: str,
    fields: Mapping[str, object] | None = None,
    describe: Callable[[BaseException], str] = error_class,
    give_up_on: tuple[type[BaseException], ...] = (),
    stopping: asyncio.Event | None = None,
) -> bool:
    """Await `call` until it returns, with a growing backoff after each `retry_on` failure.

    Each failure is logged as a warning `message` with `fields`, the error (`describe`d), the attempt and the delay.
    Any other error, or one of `give_up_on`, propagates at once. Without `stopping` it retries for as long as it takes
    and returns True; with it, it returns False once `stopping` is set, checked before each attempt and during each
    wait.
    """
    attempts = Attempts(backoff)
    while stopping is None or not stopping.is_set():
        try:
            await call()
            return True
        except give_up_on:
            raise
        except retry_on as error:
            delay = attempts.failed()
            log.warning(
                message, **(fields or {}), error=describe(error), attempt=attempts.count, delay_s=round(delay, 3)
            )
            if stopping is None:
                await asyncio.sleep(delay)
            else:
                await wait_event(stopping, delay)
    return False
