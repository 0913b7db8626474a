"""Record ownership: a client that makes a request per record stops at a revoked partition's records, mid-send."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence
from typing import Any

from gateway.connector import VendorRecord
from gateway.delivery import Tenant
from gateway.offsets import PartitionOffsets
from gateway.outcomes import Outcome, SendResult
from gateway.ownership import revoked, still_owned
from tests.unit.helpers import make_item
from tests.unit.test_delivery_engine import Harness


class PerRecordClient:
    """Like Enable3's client: one request per record, asking before each; the revocation lands after request 1."""

    def __init__(self, revoke: PartitionOffsets) -> None:
        self.revoke = revoke
        self.requests: list[str] = []

    async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
        for index, record in enumerate(records):
            # A spawned task sees the same answer (UserWise sends players in a TaskGroup).
            if not await asyncio.create_task(_asks(record)):
                return revoked(index)
            self.requests.append(record.record_id)
            if len(self.requests) == 1:
                self.revoke.close()  # the partition is revoked while the batch is in flight
        return SendResult(Outcome.DELIVERED, 201)

    async def close(self) -> None:
        return None


async def _asks(record: VendorRecord) -> bool:
    return still_owned(record)


async def test_a_revoked_partition_stops_before_the_next_request_and_the_rest_goes_without_backoff() -> None:
    """Records of two partitions in one batch: after the revocation no request carries the revoked partition's
    records, the other partition's are all delivered, and nothing is counted as a retry or backed off."""
    gone, kept = PartitionOffsets(), PartitionOffsets()
    items = []
    for index in range(6):
        tracker = gone if index % 2 == 0 else kept
        tracker.track(index, 1)
        items.append(make_item(index, offsets=tracker))
    client = PerRecordClient(gone)
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 201))
    harness.engine._client = client
    await asyncio.wait_for(harness.engine.deliver(Tenant("default", None), items), 5)
    assert client.requests == ["id-0", "id-1", "id-3", "id-5"]
    assert len(kept) == 0
    assert harness.sleeps == []
    assert harness.value("gateway_delivery_retries_total", reason="revoked") == 0


def test_outside_a_send_every_record_is_owned() -> None:
    """A client used without the engine (tests, `gateway map`) sends everything."""
    assert still_owned(make_item(1).record)


class BlockedClient:
    """A send whose one request stays on the wire until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.on_the_wire = asyncio.Event()

    async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
        self.on_the_wire.set()
        await self.release.wait()
        return SendResult(Outcome.DELIVERED, 200)

    async def close(self) -> None:
        return None


async def test_a_request_on_the_wire_for_a_revoked_partition_is_known_until_it_ends() -> None:
    """The pipeline's revocation waits on this before handing the partition over."""
    offsets = PartitionOffsets()
    offsets.track(0, 1)
    client = BlockedClient()
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 200))
    harness.engine._client = client
    delivery = asyncio.create_task(harness.engine.deliver(Tenant("default", None), [make_item(0, offsets=offsets)]))
    await asyncio.wait_for(client.on_the_wire.wait(), 5)
    assert not harness.engine.sending_revoked()
    offsets.close()
    assert harness.engine.sending_revoked()
    client.release.set()
    await asyncio.wait_for(delivery, 5)
    assert not harness.engine.sending_revoked()


class Message:
    """A source message that can be watched with a weak reference."""


class ConnectingClient:
    """A send that opens something outliving it, as a new pooled connection does: its reader callback is a handle
    holding a copy of the context the send ran in."""

    def __init__(self) -> None:
        self.handles: list[asyncio.TimerHandle] = []

    async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
        self.handles.append(asyncio.get_running_loop().call_later(3600, lambda: None))
        return SendResult(Outcome.DELIVERED, 200)

    async def close(self) -> None:
        return None


async def test_what_a_send_leaves_behind_does_not_keep_its_batch_alive() -> None:
    """A context copied during the send (a connection kept in the pool) outlives it; the delivered records it
    carried must not: on main every pooled connection kept a whole batch of settled records in memory."""
    tracker = PartitionOffsets()
    items = []
    for index in range(3):
        tracker.track(index, 1)
        item = make_item(index, offsets=tracker)
        item.message = Message()
        items.append(item)
    watched = weakref.ref(items[0].message)
    client = ConnectingClient()
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 200))
    harness.engine._client = client
    await asyncio.wait_for(harness.engine.deliver(Tenant("default", None), items), 5)
    assert len(tracker) == 0
    del items, item
    gc.collect()
    assert client.handles  # the copied context is still alive
    assert watched() is None
    for handle in client.handles:
        handle.cancel()
