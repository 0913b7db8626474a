"""One destination's sending side, wired once for `gateway run` and `gateway replay`: its tenants, router, transport,
client, delivery engine, and the lanes that feed the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from gateway.backoff import FullJitterBackoff
from gateway.batcher import Batcher, Item, Lane
from gateway.connector import ClientContext, VendorRecord
from gateway.delivery import DeadLetter, DeliveryEngine, Tenant
from gateway.destination import BatchLimits, Destination
from gateway.events import Event
from gateway.http_client import HttpTransport
from gateway.metrics import DestinationMetrics
from gateway.offsets import PartitionOffsets
from gateway.routing import Decoder, Router


def _nothing() -> None:
    pass


def lane_count(destination: Destination) -> int:
    """The most lanes a destination runs: `concurrency` per tenant."""
    return destination.concurrency * max(1, len(destination.credentials))


class DeliveryStage:
    """Tenants, router, transport, client and engine of one destination, and its lanes (per tenant, per key hash)."""

    def __init__(
        self,
        destination: Destination,
        metrics: DestinationMetrics,
        dead_letter: DeadLetter,
        *,
        batch: BatchLimits | None = None,
        shared: object | None = None,
        on_state_change: Callable[[], None] = _nothing,
        on_lane_failed: Callable[[BaseException], None] = lambda error: None,
        decoder: Decoder | None = None,
    ) -> None:
        """`shared` is the destination's connector extension's shared part, handed to its client; `batch` bounds the
        lanes' batches (the destination's by default); `on_lane_failed` hears of a lane that ended with a bug;
        `decoder` turns records into events (a gateway's pipelines share one, see gateway/decode_cache.py)."""
        self.name = destination.name
        config = destination.config
        self.tenants = {brand: Tenant(brand, creds) for brand, creds in destination.credentials.items()}
        self.router = Router(destination, self.tenants, decoder)
        # One connection per lane (lanes are per tenant), so no send waits for a pooled connection inside its timeout.
        pool_size = max(lane_count(destination), 4)
        self.transport = HttpTransport(config, metrics, pool_size=pool_size)
        self.client = destination.connector.client(
            ClientContext(
                destination=config,
                options=destination.options,
                settings=destination.settings,
                http=self.transport,
                shared=shared,
            )
        )
        retry = config.retry
        self.engine = DeliveryEngine(
            destination.name,
            self.client,
            FullJitterBackoff(initial=retry.initial, maximum=retry.max, retry_after_cap=retry.retry_after_cap),
            retry.halt_probe,
            metrics,
            dead_letter,
            on_state_change=on_state_change,
            request_slots=pool_size,
        )
        self._batch = batch or destination.batch
        self._concurrency = destination.concurrency
        self._lanes: dict[str, list[Lane | None]] = {name: [None] * self._concurrency for name in self.tenants}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._on_lane_failed = on_lane_failed
        self.lane_failure: BaseException | None = None
        self.sending = 0  # batches handed to the engine and not back yet

    def lanes(self) -> list[Lane]:
        """The lanes started so far."""
        return [lane for lanes in self._lanes.values() for lane in lanes if lane is not None]

    def held(self, tenant: str) -> list[Item]:
        """The items of `tenant` not yet settled here: in its lanes (being delivered or queued), and in per-key
        deliveries a lane handed on."""
        lanes = [item for lane in self._lanes[tenant] if lane is not None for item in lane.held()]
        return [*lanes, *self.engine.held(tenant)]

    def hurry(self) -> None:
        """Every lane sends what it holds without lingering (the destination holds half its bound or more)."""
        for lanes in self._lanes.values():
            for lane in lanes:
                if lane is not None:
                    lane.hurry()

    def place(
        self,
        tenant: Tenant,
        records: Sequence[VendorRecord],
        event: Event,
        offsets: PartitionOffsets,
        offset: int,
        message: Any,
        consumed_at: float,
        monotonic: float,
    ) -> None:
        """Queue a routed message's records (tracked at `offset`) on their tenant's lanes, each by its key."""
        occurred_at = event.occurred_at.timestamp()
        event_type = event.type
        for record in records:
            self.lane(tenant, record.key).add(
                Item(record, offsets, offset, event_type, consumed_at, occurred_at, message), monotonic
            )

    def lane(self, tenant: Tenant, key: str) -> Lane:
        """The lane of `tenant` that carries ordering key `key`, started on first use."""
        lanes = self._lanes[tenant.name]
        index = hash(key) % self._concurrency if self._concurrency > 1 else 0
        lane = lanes[index]
        if lane is None:
            engine = self.engine

            async def deliver(items: list[Item], tenant: Tenant = tenant) -> None:
                self.sending += 1
                try:
                    await engine.deliver(tenant, items)
                finally:
                    self.sending -= 1

            lane = lanes[index] = Lane(Batcher(self._batch), deliver)
            task = asyncio.create_task(lane.run(), name=f"lane:{self.name}:{tenant.name}:{index}")
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_ended)
        return lane

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        self._lane_tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            # A lane never ends by itself: its records would stall unsettled.
            if self.lane_failure is None:
                self.lane_failure = error
            self._on_lane_failed(error)

    async def stop(self) -> None:
        """Cancel the lanes and the engine's per-key deliveries (their records stay unsettled, so uncommitted)."""
        tasks = list(self._lane_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.engine.close()

    async def close(self) -> None:
        """Release the client, then the transport under it."""
        await self.client.close()
        await self.transport.close()
