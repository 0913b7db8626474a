"""Unit tests for the delivery engine's outcome handling, with a scripted vendor client at the edge."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from gateway.backoff import RETRY_AFTER_JITTER, FullJitterBackoff
from gateway.batcher import Item
from gateway.connector import VendorRecord
from gateway.delivery import CHAINS_PER_SLOT, DeliveryEngine, Tenant
from gateway.logs import configure
from gateway.metrics import DestinationMetrics, Metrics
from gateway.offsets import PartitionOffsets
from gateway.outcomes import Outcome, SendResult
from tests.unit.helpers import OPEN_ENGINES, make_item

Script = Callable[[Sequence[VendorRecord]], SendResult]


class ScriptedClient:
    """Answers each send with what the script says, recording every send."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sends: list[list[str]] = []

    async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
        self.sends.append([record.record_id for record in records])
        return self.script(records)

    async def close(self) -> None:
        return None


class Harness:
    """An engine with recorded sleeps and dead letters (closed after the test: tests/unit/conftest.py)."""

    def __init__(
        self,
        script: Script,
        *,
        backoff: FullJitterBackoff | None = None,
        client: type[ScriptedClient] = ScriptedClient,
    ) -> None:
        self.client = client(script)
        self.sleeps: list[float] = []
        self.dead: list[tuple[str, str, int | None]] = []
        self.registry = CollectorRegistry()
        self.metrics = DestinationMetrics(Metrics(self.registry), "d")

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            await asyncio.sleep(0)

        def dead_letter(items: Sequence[Item], reason: str, status: int | None, detail: str) -> None:
            for item in items:
                self.dead.append((item.record.record_id, reason, status))
                item.offsets.settle(item.offset)

        self.engine = DeliveryEngine(
            "d",
            self.client,
            backoff or FullJitterBackoff(initial=0.01, maximum=0.05, retry_after_cap=30.0),
            halt_probe=5.0,
            metrics=self.metrics,
            dead_letter=dead_letter,
            sleep=sleep,
        )
        OPEN_ENGINES.append(self.engine)

    def value(self, name: str, **labels: str) -> float:
        result = self.registry.get_sample_value(name, {"destination": "d", **labels})
        return result or 0.0


def _items(count: int) -> tuple[PartitionOffsets, list[Item]]:
    offsets = PartitionOffsets()
    items = []
    for index in range(count):
        offsets.track(index, 1)
        items.append(make_item(index, offsets=offsets))
    return offsets, items


async def test_delivered_settles_everything() -> None:
    """A 2xx settles every record and counts it by event type."""
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204))
    offsets, items = _items(5)
    await harness.engine.deliver(Tenant("default", None), items)
    assert offsets.committable() == 5
    assert harness.value("gateway_events_delivered_total", type="deposit") == 5


async def test_retry_until_vendor_recovers_without_limit() -> None:
    """Transient failures are retried with backoff, however many, until the vendor answers."""
    answers = iter([SendResult(Outcome.RETRY, 503)] * 25 + [SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    offsets, items = _items(3)
    await harness.engine.deliver(Tenant("default", None), items)
    assert offsets.committable() == 3
    assert len(harness.client.sends) == 26
    assert len(harness.sleeps) == 25
    assert all(0 <= delay <= 0.05 for delay in harness.sleeps)
    assert harness.value("gateway_delivery_retries_total", reason="http_503") == 25
    assert harness.dead == []


async def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits that long (plus a little jitter) before the next send."""
    answers = iter([SendResult(Outcome.RETRY, 429, retry_after=7.0), SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    _, items = _items(1)
    await harness.engine.deliver(Tenant("default", None), items)
    assert len(harness.sleeps) == 1
    assert 7.0 <= harness.sleeps[0] <= 7.0 * (1 + RETRY_AFTER_JITTER)


async def test_retry_after_zero_waits_at_least_initial() -> None:
    """`Retry-After: 0` never makes a zero sleep: the engine waits at least the retry's `initial`."""
    answers = iter([SendResult(Outcome.RETRY, 429, retry_after=0.0)] * 20 + [SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    _, items = _items(1)
    await harness.engine.deliver(Tenant("default", None), items)
    assert len(harness.sleeps) == 20
    assert min(harness.sleeps) >= 0.01


async def test_progress_resets_the_backoff() -> None:
    """A send that settled some records retries the rest promptly: the delay never grows while records progress."""

    def one_at_a_time(records: Sequence[VendorRecord]) -> SendResult:
        if len(records) == 1:
            return SendResult(Outcome.DELIVERED, 204)
        return SendResult(Outcome.RETRY, 503, delivered=frozenset({0}))

    harness = Harness(one_at_a_time, backoff=FullJitterBackoff(initial=0.01, maximum=100.0))
    offsets, items = _items(16)
    await harness.engine.deliver(Tenant("default", None), items)
    assert offsets.committable() == 16
    assert len(harness.sleeps) == 15
    assert max(harness.sleeps) <= 0.01  # attempt 0's ceiling each time, not 0.01 * 2**14


@pytest.mark.parametrize(
    "result",
    [
        SendResult(Outcome.REJECT, 400, rejected=frozenset({99})),
        SendResult(Outcome.REJECT, 400, rejected=frozenset({-1, 0})),
    ],
    ids=["beyond", "negative"],
)
async def test_a_reject_naming_records_outside_the_batch_never_loops(result: SendResult) -> None:
    """A connector bug (REJECT naming indexes outside the batch) is logged and isolated by splitting, never a hot
    loop: the send count stays bounded and every record ends dead-lettered."""
    harness = Harness(lambda records: result)
    offsets, items = _items(4)
    await asyncio.wait_for(harness.engine.deliver(Tenant("default", None), items), 5)
    assert offsets.committable() == 4
    assert sorted(record_id for record_id, _, _ in harness.dead) == [f"id-{i}" for i in range(4)]
    assert len(harness.client.sends) <= 7  # 4 + 2 + 1: the split tree


async def test_delivered_outside_the_batch_is_ignored_not_settled() -> None:
    """A partial result naming a delivered index beyond the batch settles nothing it cannot name: sent again."""
    answers = iter([SendResult(Outcome.RETRY, 503, delivered=frozenset({5})), SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    offsets, items = _items(2)
    await harness.engine.deliver(Tenant("default", None), items)
    assert harness.client.sends == [["id-0", "id-1"], ["id-0", "id-1"]]
    assert offsets.committable() == 2


class PerKeyClient(ScriptedClient):
    """A per-request vendor client: the engine hands it one ordering key's records per send."""

    per_key_requests = True


def _keyed_items(keys: list[str]) -> tuple[PartitionOffsets, list[Item]]:
    offsets = PartitionOffsets()
    items = []
    for index, key in enumerate(keys):
        offsets.track(index, 1)
        items.append(make_item(index, offsets=offsets, key=key))
    return offsets, items


async def test_per_key_client_gets_one_key_per_send_in_order() -> None:
    """Each send carries one player's records, in source order."""
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=PerKeyClient)
    offsets, items = _keyed_items(["a", "b", "a", "c", "b", "a"])
    await harness.engine.deliver(Tenant("default", None), items)
    await harness.engine.settled()
    assert offsets.committable() == 6
    assert sorted(harness.client.sends) == [["id-0", "id-2", "id-5"], ["id-1", "id-4"], ["id-3"]]


async def test_one_players_hanging_request_does_not_hold_back_the_others_retries() -> None:
    """While player a's request hangs, player b's failed request is retried and delivered: b's remainder is not held
    back until the slowest request ends."""
    release = asyncio.Event()
    b_answers = iter([SendResult(Outcome.RETRY, 503), SendResult(Outcome.DELIVERED, 204)])

    class Hanging(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            self.sends.append([record.record_id for record in records])
            if records[0].key == "a":
                await release.wait()
                return SendResult(Outcome.DELIVERED, 204)
            return next(b_answers)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=Hanging)
    offsets, items = _keyed_items(["a", "b", "b"])
    await harness.engine.deliver(Tenant("default", None), items)
    for _ in range(200):
        if harness.value("gateway_events_delivered_total", type="deposit") >= 2:
            break
        await asyncio.sleep(0.01)
    b_delivered = harness.value("gateway_events_delivered_total", type="deposit")
    release.set()
    await asyncio.wait_for(harness.engine.settled(), 5)
    assert b_delivered == 2  # both of b's records, while a still hung
    assert harness.client.sends.count(["id-1", "id-2"]) == 2
    assert offsets.committable() == 3


async def test_per_key_failure_of_one_player_does_not_resend_the_others() -> None:
    """Player a fails three times; player b is sent once and never again."""
    a_answers = iter([SendResult(Outcome.RETRY, 503)] * 3 + [SendResult(Outcome.DELIVERED, 204)])

    def script(records: Sequence[VendorRecord]) -> SendResult:
        return next(a_answers) if records[0].key == "a" else SendResult(Outcome.DELIVERED, 204)

    harness = Harness(script, client=PerKeyClient)
    offsets, items = _keyed_items(["a", "b", "a", "b"])
    await harness.engine.deliver(Tenant("default", None), items)
    await harness.engine.settled()
    assert offsets.committable() == 4
    assert harness.client.sends.count(["id-1", "id-3"]) == 1
    assert harness.client.sends.count(["id-0", "id-2"]) == 4


async def test_unknown_reject_is_isolated_by_splitting() -> None:
    """When the vendor rejects a batch without naming items, splitting dead-letters only the bad one."""
    bad = "id-5"

    def script(records: Sequence[VendorRecord]) -> SendResult:
        if any(record.record_id == bad for record in records):
            return SendResult(Outcome.REJECT, 400, detail="bad item")
        return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(script)
    offsets, items = _items(16)
    await harness.engine.deliver(Tenant("default", None), items)
    assert harness.dead == [(bad, "rejected", 400)]
    assert offsets.committable() == 16
    assert harness.value("gateway_events_delivered_total", type="deposit") == 15
    delivered = [rid for send in harness.client.sends for rid in send if bad not in send]
    assert sorted(delivered, key=lambda rid: int(rid[3:])) == [f"id-{i}" for i in range(16) if i != 5]


async def test_named_rejects_are_dead_lettered_and_rest_resent() -> None:
    """When the vendor names the bad items, only they are dead-lettered and the rest is sent again whole."""
    answers = iter(
        [SendResult(Outcome.REJECT, 422, detail="x", rejected=frozenset({1, 3})), SendResult(Outcome.DELIVERED, 204)]
    )
    harness = Harness(lambda records: next(answers))
    offsets, items = _items(5)
    await harness.engine.deliver(Tenant("default", None), items)
    assert sorted(rid for rid, _, _ in harness.dead) == ["id-1", "id-3"]
    assert harness.client.sends[1] == ["id-0", "id-2", "id-4"]
    assert offsets.committable() == 5


async def test_partial_delivery_resends_only_the_rest() -> None:
    """A partial result settles what was stored and retries only the remainder."""
    answers = iter([SendResult(Outcome.RETRY, 503, delivered=frozenset({0, 2})), SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    offsets, items = _items(4)
    await harness.engine.deliver(Tenant("default", None), items)
    assert harness.client.sends[1] == ["id-1", "id-3"]
    assert offsets.committable() == 4


async def test_duplicates_on_a_partial_result_are_counted_once() -> None:
    """Duplicates a partial result reports among its delivered records count once, beside the final send's own."""
    answers = iter(
        [
            SendResult(Outcome.RETRY, 503, delivered=frozenset({0, 1}), duplicates=1),
            SendResult(Outcome.REJECT, 400, delivered=frozenset({0}), rejected=frozenset({1}), duplicates=1),
            SendResult(Outcome.DELIVERED, 201, duplicates=1),
        ]
    )
    harness = Harness(lambda records: next(answers))
    offsets, items = _items(5)
    await harness.engine.deliver(Tenant("default", None), items)
    assert harness.client.sends[1:] == [["id-2", "id-3", "id-4"], ["id-4"]]
    assert harness.dead == [("id-3", "rejected", 400)]
    assert harness.value("gateway_events_duplicate_total") == 3
    assert offsets.committable() == 5


async def test_halt_keeps_events_and_probes_until_accepted() -> None:
    """401/403 halts the tenant, dead-letters nothing, probes at the probe interval, and resumes on success."""
    answers = iter([SendResult(Outcome.HALT, 403)] * 3 + [SendResult(Outcome.DELIVERED, 204)])
    harness = Harness(lambda records: next(answers))
    tenant = Tenant("default", None)
    offsets, items = _items(2)
    await harness.engine.deliver(tenant, items)
    assert harness.dead == []
    assert harness.sleeps == [5.0, 5.0, 5.0]
    assert offsets.committable() == 2
    assert not tenant.halted
    assert harness.value("gateway_tenant_halted", tenant="default") == 0


async def test_halted_tenant_blocks_other_senders_until_probe_succeeds() -> None:
    """While one sender probes a halted tenant, another sender of that tenant waits instead of sending."""
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204))
    tenant = Tenant("default", None)
    tenant.halt(object())
    _, items = _items(1)
    waiter = asyncio.create_task(harness.engine.deliver(tenant, items))
    await asyncio.sleep(0.01)
    assert harness.client.sends == []
    tenant.resume()
    await asyncio.wait_for(waiter, 1)
    assert harness.client.sends == [["id-0"]]


async def test_abandoned_prober_hands_over() -> None:
    """If the prober goes away without a verdict, a waiting sender takes over the probing."""
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204))
    tenant = Tenant("default", None)
    prober = object()
    tenant.halt(prober)
    _, items = _items(1)
    waiter = asyncio.create_task(harness.engine.deliver(tenant, items))
    await asyncio.sleep(0.01)
    assert harness.client.sends == []
    tenant.release(prober)
    await asyncio.wait_for(waiter, 1)
    assert harness.client.sends == [["id-0"]]
    assert not tenant.halted


async def test_revoked_items_are_not_sent() -> None:
    """Records of a partition revoked before sending are dropped from the batch, uncommitted."""
    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204))
    offsets, items = _items(3)
    offsets.close()
    await harness.engine.deliver(Tenant("default", None), items)
    assert harness.client.sends == []


async def test_destination_stays_failing_while_any_sender_fails() -> None:
    """One lane delivering does not mark the destination up while another lane's sends still fail."""
    gate = asyncio.Event()

    def script(records: Sequence[VendorRecord]) -> SendResult:
        if records[0].record_id == "id-0" and not gate.is_set():
            return SendResult(Outcome.RETRY, 503)
        return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(script)
    offsets = PartitionOffsets()
    offsets.track(0, 1)
    offsets.track(1, 1)
    failing_lane = asyncio.create_task(harness.engine.deliver(Tenant("default", None), [make_item(0, offsets)]))
    await asyncio.sleep(0.01)
    assert harness.engine.failing
    await harness.engine.deliver(Tenant("default", None), [make_item(1, offsets)])
    assert harness.engine.failing  # the other lane still fails
    gate.set()
    await asyncio.wait_for(failing_lane, 1)
    assert not harness.engine.failing


async def test_a_client_that_raises_is_retried_not_dropped() -> None:
    """An exception from a connector client (a bug) is retried with backoff as client_error; nothing is lost."""
    failures = iter([True, True, False])

    def script(records: Sequence[VendorRecord]) -> SendResult:
        if next(failures):
            raise KeyError("bug")
        return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(script)
    offsets, items = _items(2)
    await harness.engine.deliver(Tenant("default", None), items)
    assert offsets.committable() == 2
    assert harness.value("gateway_delivery_retries_total", reason="client_error") == 2
    assert harness.dead == []


async def test_a_players_next_batch_waits_for_its_hanging_request_but_other_players_go_on() -> None:
    """Per-key deliveries outlive the lane's batch: while player a's request hangs, the lane's next batch is sent for
    player b at once, and a's next record is sent only after a's hung one settled (its order holds)."""
    release = asyncio.Event()

    class Hanging(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            self.sends.append([record.record_id for record in records])
            if records[0].record_id == "id-0":
                await release.wait()
            return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=Hanging)
    offsets = PartitionOffsets()
    for index in range(4):
        offsets.track(index, 1)
    first = [make_item(0, offsets=offsets, key="a"), make_item(1, offsets=offsets, key="b")]
    second = [make_item(2, offsets=offsets, key="a"), make_item(3, offsets=offsets, key="b")]
    tenant = Tenant("default", None)
    await asyncio.wait_for(harness.engine.deliver(tenant, first), 1)
    await asyncio.wait_for(harness.engine.deliver(tenant, second), 1)
    for _ in range(100):
        if ["id-3"] in harness.client.sends:
            break
        await asyncio.sleep(0.01)
    assert ["id-3"] in harness.client.sends  # b's next batch went while a hung
    assert ["id-2"] not in harness.client.sends  # a's next record waits for a's hung one
    release.set()
    await asyncio.wait_for(harness.engine.settled(), 5)
    assert harness.client.sends.index(["id-0"]) < harness.client.sends.index(["id-2"])
    assert offsets.committable() == 4


async def test_close_cancels_per_key_deliveries_and_settles_nothing_more() -> None:
    """Shutdown cancels the per-key deliveries still running: their records stay unsettled (uncommitted)."""
    never = asyncio.Event()

    class Stuck(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            await never.wait()
            return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=Stuck)
    offsets, items = _keyed_items(["a", "b"])
    await harness.engine.deliver(Tenant("default", None), items)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(harness.engine.close(), 5)
    assert offsets.committable() is None or offsets.committable() == 0
    await asyncio.wait_for(harness.engine.settled(), 1)


async def test_per_key_deliveries_are_bounded_and_the_lane_waits_past_the_bound() -> None:
    """While the vendor does not answer, once CHAINS_PER_SLOT x request_slots per-key deliveries run the next batch's
    deliver() waits (the lane stalls, holding plain records) until one ends."""
    release = asyncio.Event()

    class Silent(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            await release.wait()
            return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=Silent)
    limit = CHAINS_PER_SLOT * 4  # the harness's engine has the default 4 request slots
    offsets = PartitionOffsets()
    tenant = Tenant("default", None)
    for index in range(limit + 1):
        offsets.track(index, 1)
    for index in range(limit):
        await asyncio.wait_for(harness.engine.deliver(tenant, [make_item(index, offsets=offsets, key=f"p{index}")]), 1)
    blocked = asyncio.create_task(harness.engine.deliver(tenant, [make_item(limit, offsets=offsets, key="last")]))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    release.set()
    await asyncio.wait_for(blocked, 5)
    await asyncio.wait_for(harness.engine.settled(), 5)
    assert offsets.committable() == limit + 1


async def test_a_batch_of_more_players_than_the_bound_does_not_wait_for_a_hung_player() -> None:
    """One player's request hangs; a batch of more players than the bound still starts at once: the bound stalls
    lanes only when that many deliveries already run, never until every other player is done."""
    release = asyncio.Event()

    class OneHangs(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            if records[0].key == "hung":
                await release.wait()
            return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=OneHangs)
    players = CHAINS_PER_SLOT * 4 + 10
    offsets = PartitionOffsets()
    for index in range(players + 1):
        offsets.track(index, 1)
    tenant = Tenant("default", None)
    await harness.engine.deliver(tenant, [make_item(0, offsets=offsets, key="hung")])
    batch = [make_item(index, offsets=offsets, key=f"p{index}") for index in range(1, players + 1)]
    await asyncio.wait_for(harness.engine.deliver(tenant, batch), 1)
    for _ in range(200):
        if harness.value("gateway_events_delivered_total", type="deposit") == players:
            break
        await asyncio.sleep(0.01)
    assert harness.value("gateway_events_delivered_total", type="deposit") == players
    release.set()
    await asyncio.wait_for(harness.engine.settled(), 5)
    assert offsets.committable() == players + 1


async def test_per_key_sends_in_flight_never_exceed_the_request_slots() -> None:
    """A batch of 60 players: their sends overlap, but never more than the engine's request slots (4 here), the
    pool's connections. A per-request client's one-player send relies on this bound alone (UserWise's does)."""
    in_flight = 0
    most = 0

    class Slow(PerKeyClient):
        async def send(self, credentials: Any, records: Sequence[VendorRecord]) -> SendResult:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
            return SendResult(Outcome.DELIVERED, 204)

    harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=Slow)
    offsets, items = _keyed_items([f"p{index}" for index in range(60)])
    await asyncio.wait_for(harness.engine.deliver(Tenant("default", None), items), 1)
    await asyncio.wait_for(harness.engine.settled(), 5)
    assert offsets.committable() == 60
    assert most == 4


def _written(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


async def test_live_traffic_writes_a_summary_per_tenant_not_a_line_per_request() -> None:
    """2,000 single-event batches of a per-request vendor (live traffic: one request each), over two tenants, at the
    production level: no line per batch, and at close one `delivered` line per tenant counting all of them."""
    stream = io.StringIO()
    configure("info", "json", stream=stream)
    try:
        harness = Harness(lambda records: SendResult(Outcome.DELIVERED, 204), client=PerKeyClient)
        tenants = [Tenant("brand-a", None), Tenant("brand-b", None)]
        offsets = PartitionOffsets()
        for index in range(2000):
            offsets.track(index, 1)
            await harness.engine.deliver(tenants[index % 2], [make_item(index, offsets=offsets, key=f"p{index}")])
        await harness.engine.settled()
        assert offsets.committable() == 2000
        assert _written(stream) == []  # nothing yet: the summary waits out its interval
        await harness.engine.close()
        lines = _written(stream)
    finally:
        configure("info", "json", stream=io.StringIO())
    assert [(line["event"], line["tenant"]) for line in lines] == [("delivered", "brand-a"), ("delivered", "brand-b")]
    for line in lines:
        assert (line["destination"], line["batches"], line["records"], line["delivered"], line["sends"]) == (
            "d",
            1000,
            1000,
            1000,
            1000,
        )
        assert (line["dead_lettered"], line["duplicates"], line["retries"], line["splits"]) == (0, 0, 0, 0)


async def test_a_batch_that_met_trouble_keeps_its_own_line() -> None:
    """A batch that was retried and had a record dead-lettered is logged on its own at INFO (and counted in the
    summary); at DEBUG every batch is."""
    answers = iter(
        [SendResult(Outcome.RETRY, 503), SendResult(Outcome.REJECT, 422, rejected=frozenset({1}))]
        + [SendResult(Outcome.DELIVERED, 204)] * 3
    )
    stream = io.StringIO()
    configure("info", "json", stream=stream)
    try:
        harness = Harness(lambda records: next(answers))
        _, items = _items(3)
        await harness.engine.deliver(Tenant("default", None), items)
        _, clean = _items(2)
        await harness.engine.deliver(Tenant("default", None), clean)
        await harness.engine.close()
        lines = [line for line in _written(stream) if line["event"] in ("batch", "delivered")]
        debug = io.StringIO()
        configure("debug", "json", stream=debug)
        _, more = _items(2)
        await harness.engine.deliver(Tenant("default", None), more)
        debug_lines = [line for line in _written(debug) if line["event"] == "batch"]
    finally:
        configure("info", "json", stream=io.StringIO())
    batch, summary = lines
    assert (batch["event"], batch["level"], batch["records"], batch["retries"], batch["dead_lettered"]) == (
        "batch",
        "info",
        3,
        1,
        1,
    )
    assert (summary["event"], summary["batches"], summary["records"], summary["delivered"]) == ("delivered", 2, 5, 4)
    assert (summary["sends"], summary["retries"], summary["dead_lettered"]) == (4, 1, 1)
    assert [(line["level"], line["records"], line["retries"]) for line in debug_lines] == [("debug", 2, 0)]
