"""The delivery engine: send a batch, then act on the outcome table until every record is delivered or dead-lettered.

Per-key delivery: a client that sends one request per record or per player (`per_key_requests`) gets one ordering
key's records per send, and the batch's keys are delivered concurrently (at most `request_slots` sends at once), each
with its own retry loop, in a task chained after that key's earlier records (gateway.key_chains). One player's
failing or hanging request therefore holds back only that player's later records: the others' remainders are
re-sent on their own schedule, and the lane goes on with its next batch. In every mode, a send that made progress
resets the backoff, so a remainder is retried promptly rather than after an ever longer delay.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from gateway.backoff import FullJitterBackoff
from gateway.batcher import Item
from gateway.config import ANY_BRAND
from gateway.connector import VendorClient, VendorRecord, sends_per_key
from gateway.delivery_summary import FIELDS as SUMMARY_FIELDS
from gateway.delivery_summary import DeliverySummary
from gateway.key_chains import KeyChains
from gateway.logs import destination_logger
from gateway.metrics import DestinationMetrics, observe_many, observe_one
from gateway.outcomes import Outcome, SendResult, is_redirect, retry_reason
from gateway.ownership import REVOKED, Ownership
from gateway.retries import Attempts

log = structlog.get_logger("gateway.delivery")
_stdlib_log = logging.getLogger("gateway.delivery")  # its level is the configured one (gateway.logs)

CHAINS_PER_SLOT = 16
"""Per-key deliveries of one tenant running at once, per request slot; past it that tenant's lanes wait (memory stays
bounded, and other tenants go on)."""

DeadLetter = Callable[[Sequence[Item], str, int | None, str], None]


class Tenant:
    """One brand's credentials at one destination, and whether the vendor currently refuses them.

    While halted, exactly one sender (the prober) keeps re-sending its batch every `halt_probe` seconds; the others
    wait. If the prober goes away (its partition revoked, or shutdown), a waiting sender takes over the probing.
    """

    def __init__(self, name: str, credentials: Any) -> None:
        self.name = name
        self.credentials = credentials
        self.halted = False
        self.prober: object | None = None
        self._changed = asyncio.Event()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_turn(self, sender: object) -> None:
        """Return when `sender` may send: the tenant is not halted, or `sender` is (or becomes) the prober."""
        while self.halted:
            if self.prober is None:
                self.prober = sender
            if self.prober is sender:
                return
            await self._changed.wait()

    def halt(self, sender: object) -> bool:
        """Stop the tenant's sending; `sender` becomes the prober. True when this call halted it."""
        self.prober = sender
        if self.halted:
            return False
        self.halted = True
        return True

    def resume(self) -> bool:
        """The vendor accepts the credentials again. True when this call resumed it."""
        self.prober = None
        if not self.halted:
            return False
        self.halted = False
        self._pulse()
        return True

    def release(self, sender: object) -> None:
        """`sender` stops probing without a verdict; a waiting sender takes over."""
        if self.prober is sender:
            self.prober = None
            self._pulse()

    def __repr__(self) -> str:
        return f"Tenant({self.name!r}, halted={self.halted})"


def tenant_for(tenants: Mapping[str, Tenant], brand: str) -> Tenant | None:
    """The tenant whose credentials carry `brand`'s events: its own, else the catch-all `*` tenant, else none."""
    return tenants.get(brand) or tenants.get(ANY_BRAND)


class DeliveryEngine:
    """Written once for every connector: retries without a count limit, splits to isolate rejects, halts on auth."""

    def __init__(
        self,
        destination: str,
        client: VendorClient,
        backoff: FullJitterBackoff,
        halt_probe: float,
        metrics: DestinationMetrics,
        dead_letter: DeadLetter,
        on_state_change: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_slots: int = 4,
    ) -> None:
        """`request_slots` bounds the concurrent sends of per-key delivery: the transport's connection pool, so a
        request never waits for a connection inside its timeout."""
        self.destination = destination
        self._log = destination_logger("gateway.delivery", destination)
        self._client = client
        self._backoff = backoff
        self._halt_probe = halt_probe
        self._metrics = metrics
        self._dead_letter = dead_letter
        self._on_state_change = on_state_change
        self._sleep = sleep
        self._failing: set[object] = set()  # senders whose last answer was a transient failure
        self._sending: dict[object, Sequence[Item]] = {}  # the segments whose request is on the wire
        self._slots = asyncio.Semaphore(request_slots) if sends_per_key(client) else None
        self._chains = KeyChains(destination)
        self._chain_limit = CHAINS_PER_SLOT * request_slots
        self._summary = DeliverySummary(self._log)

    async def deliver(self, tenant: Tenant, items: list[Item]) -> None:
        """Deliver one lane's batch: returns when each record is delivered, dead-lettered or its partition revoked;
        for a per-key client, once each player's records are under way (see gateway.key_chains)."""
        started = time.monotonic()
        stats: Counter[str] = Counter()

        def finished() -> None:
            self._log_batch(tenant, len(items), stats, started)

        if self._slots is None:
            await self._deliver_records(tenant, items, stats)
            finished()
            return
        groups = _by_key(items)
        await self._chains.room(tenant.name, self._chain_limit)
        if self._chains.failure is not None:
            raise RuntimeError(f"a per-key delivery of {self.destination} failed") from self._chains.failure
        self._chains.start(tenant.name, groups, lambda chain: self._deliver_records(tenant, chain, stats), finished)

    def held(self, tenant: str) -> list[Item]:
        """Records of `tenant` handed to per-key deliveries that have not ended (a lane's batch is its own)."""
        return self._chains.held(tenant)

    async def settled(self) -> None:
        """Return when every per-key delivery started so far has ended (tests, and waiting out a drain)."""
        await self._chains.wait()

    async def close(self) -> None:
        """Cancel the per-key deliveries still running (shutdown; their records stay uncommitted), and write the
        summary lines of what was delivered. Idempotent."""
        await self._chains.close()
        self._summary.flush()

    def _log_batch(self, tenant: Tenant, records: int, stats: Counter[str], started: float) -> None:
        """Count a batch that sent something into the tenant's summary line; a batch that met trouble (a retry, a
        split, a dead letter, a duplicate) also gets a line of its own, as every batch does at DEBUG."""
        get = stats.get  # not stats[...]: a Counter's missing key is a Python call
        if not get("sends"):
            return
        self._summary.add(tenant.name, records, stats)
        troubled = get("retries") or get("splits") or get("dead_lettered") or get("duplicates")
        if not troubled and not _stdlib_log.isEnabledFor(logging.DEBUG):
            return  # asked first: a line built for the level to drop cost 47,000 instructions a batch
        (self._log.info if troubled else self._log.debug)(
            "batch",
            tenant=tenant.name,
            records=records,
            **{field: stats[field] for field in SUMMARY_FIELDS},
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def _deliver_records(self, tenant: Tenant, items: list[Item], stats: Counter[str]) -> None:
        """Deliver records in order, splitting where the vendor rejects without saying which record is bad."""
        segments: deque[list[Item]] = deque([items])
        while segments:
            segment = segments.popleft()
            halves = await self._deliver_segment(tenant, segment, stats)
            if halves:
                segments.extendleft(reversed(halves))

    async def _deliver_segment(self, tenant: Tenant, segment: list[Item], stats: Counter[str]) -> list[list[Item]]:
        """Send one segment until settled; returns two halves when the vendor rejected it without saying which."""
        sender = object()
        try:
            return await self._send_until_settled(tenant, segment, stats, sender)
        finally:
            tenant.release(sender)
            self._set_failing(sender, False)

    async def _send_until_settled(
        self, tenant: Tenant, segment: list[Item], stats: Counter[str], sender: object
    ) -> list[list[Item]]:
        attempts = Attempts(self._backoff)
        while True:
            if tenant.halted:  # only the prober sends then (a coroutine made per send for nothing, otherwise)
                await tenant.wait_turn(sender)
            segment = [item for item in segment if not item.offsets.closed]
            if not segment:
                return []
            sent = await self._send(tenant, segment, sender)
            if sent is None:
                continue  # the tenant halted while this send waited for a request slot: wait for the turn again
            stats["sends"] += 1
            observe_one(self._metrics.batch_events, len(segment))
            result = _checked(sent, len(segment), self.destination)
            if result.outcome is not Outcome.HALT and tenant.prober is sender:
                self._resumed(tenant)
            if result.delivered:
                done = [item for index, item in enumerate(segment) if index in result.delivered]
                # A partial result's duplicates are among the records it settled now (counted once, here).
                self._settle_delivered(done, stats, result.duplicates)
                segment = [item for index, item in enumerate(segment) if index not in result.delivered]
                result = _reindexed(result, sorted(result.delivered))
                attempts.reset()  # progress: the vendor is working, so the remainder goes again promptly
            outcome = result.outcome
            if outcome is Outcome.DELIVERED:
                self._settle_delivered(segment, stats, result.duplicates)
                return []  # no longer failing: said by _deliver_segment, on the way out
            if outcome is Outcome.RETRY and result.reason == REVOKED and _any_revoked(segment):
                continue  # the client stopped at a revoked record: the loop drops those and sends the rest now
            if outcome is Outcome.RETRY:
                reason = result.reason or retry_reason(result.status)
                self._metrics.retries(reason).inc()
                stats["retries"] += 1
                self._set_failing(sender, True)
                delay = attempts.failed(result.retry_after)
                self._log.warning(
                    "retrying",
                    tenant=tenant.name,
                    status=result.status,
                    reason=reason,
                    attempt=attempts.count,
                    delay_s=round(delay, 3),
                    records=len(segment),
                    detail=result.detail[:200],
                )
                await self._sleep(delay)
                continue
            if outcome is Outcome.HALT:
                await self._halt(tenant, sender, result)
                continue
            # REJECT: dead-letter what the vendor named, or split until the bad records stand alone.
            self._set_failing(sender, False)
            if result.rejected is not None and result.rejected:
                bad = [item for index, item in enumerate(segment) if index in result.rejected]
                segment = [item for index, item in enumerate(segment) if index not in result.rejected]
                self._reject(bad, result, stats)
                attempts.reset()
                continue
            if len(segment) == 1:
                self._reject(segment, result, stats)
                return []
            stats["splits"] += 1
            middle = len(segment) // 2
            return [segment[:middle], segment[middle:]]

    async def _send(self, tenant: Tenant, segment: list[Item], sender: object) -> SendResult | None:
        """The client's verdict; a client that raises is a bug, retried (never dropped) and logged with its trace.
        None when, per key, the tenant halted while this send waited for a slot: only the prober may send then."""
        token = object()
        self._sending[token] = segment
        try:
            with Ownership(_owned_in(segment)):
                if self._slots is None:
                    return await self._client.send(tenant.credentials, [item.record for item in segment])
                async with self._slots:
                    if tenant.halted and tenant.prober is not sender:
                        return None
                    return await self._client.send(tenant.credentials, [item.record for item in segment])
        except Exception as error:
            self._log.exception("connector client failed; retrying", tenant=tenant.name)
            return SendResult(Outcome.RETRY, 0, reason="client_error", detail=f"{type(error).__name__} in the client")
        finally:
            del self._sending[token]

    def sending_revoked(self) -> bool:
        """True while a request carrying records of a revoked partition is still on the wire."""
        return any(_any_revoked(segment) for segment in self._sending.values())

    async def _halt(self, tenant: Tenant, sender: object, result: SendResult) -> None:
        """Halt the tenant (`sender` probes), then wait for the next probe."""
        if tenant.halt(sender):
            self._metrics.tenant_halted(tenant.name, True)
            self._on_state_change()
            self._log.error(
                _halt_message(result.status),
                tenant=tenant.name,
                status=result.status,
                detail=result.detail[:400],
                probe_every_s=self._halt_probe,
            )
        self._set_failing(sender, True)
        await self._sleep(self._halt_probe)

    def _resumed(self, tenant: Tenant) -> None:
        if tenant.resume():
            self._metrics.tenant_halted(tenant.name, False)
            self._on_state_change()
            self._log.info(
                "tenant resumed: the vendor accepts the credentials again",
                tenant=tenant.name,
            )

    @property
    def failing(self) -> bool:
        """True while any sender's last answer was a transient failure (the destination is not up)."""
        return bool(self._failing)

    def _set_failing(self, sender: object, failing: bool) -> None:
        was = self.failing
        if failing:
            self._failing.add(sender)
        else:
            self._failing.discard(sender)
        if self.failing != was:
            self._on_state_change()

    def _reject(self, items: Sequence[Item], result: SendResult, stats: Counter[str]) -> None:
        stats["dead_lettered"] += len(items)
        detail = result.detail or f"vendor answered {result.status}"
        self._dead_letter(items, "rejected", result.status or None, detail)

    def _settle_delivered(self, items: Sequence[Item], stats: Counter[str], duplicates: int = 0) -> None:
        if not items:
            return
        now = time.time()
        metrics = self._metrics
        if len(items) == 1:  # per-key deliveries settle one record at a time: no tallies to build
            item = items[0]
            item.offsets.settle(item.offset)
            observe_one(metrics.latency, now - item.consumed_at)
            observe_one(metrics.event_age, max(0.0, now - item.occurred_at))
            metrics.delivered(item.event_type).inc()
        else:
            by_type: Counter[str] = Counter()
            for item in items:
                item.offsets.settle(item.offset)
                by_type[item.event_type] += 1
            observe_many(metrics.latency, [now - item.consumed_at for item in items])
            observe_many(metrics.event_age, [max(0.0, now - item.occurred_at) for item in items])
            for event_type, count in by_type.items():
                metrics.delivered(event_type).inc(count)
        if duplicates:
            metrics.duplicate.inc(duplicates)
            stats["duplicates"] += duplicates
        stats["delivered"] += len(items)


def _any_revoked(segment: Sequence[Item]) -> bool:
    return any(item.offsets.closed for item in segment)


def _owned_in(segment: Sequence[Item]) -> Callable[[VendorRecord], bool]:
    """`still_owned` for one send: a record is owned while its partition's tracker is open (index built on first ask,
    so connectors that never ask pay nothing)."""
    trackers: dict[int, Any] | None = None

    def owned(record: VendorRecord) -> bool:
        nonlocal trackers
        if trackers is None:
            trackers = {id(item.record): item.offsets for item in segment}
        tracker = trackers.get(id(record))
        return tracker is None or not tracker.closed

    return owned


def _by_key(items: list[Item]) -> list[list[Item]]:
    """The batch's records grouped by ordering key, each group in source order."""
    chains: dict[str, list[Item]] = {}
    for item in items:
        chains.setdefault(item.record.key, []).append(item)
    return list(chains.values())


def _halt_message(status: int) -> str:
    if is_redirect(status):
        return "tenant halted: the vendor redirected the request, a configuration fault (see detail); events are kept"
    return "tenant halted: the vendor refused the credentials or this IP; events are kept"


def _checked(result: SendResult, size: int, destination: str) -> SendResult:
    """The result, or when it names records outside the batch (a connector bug) a safe one, logged loudly.

    `delivered` out of range is ignored (those records are sent again: a duplicate at worst, never a loss);
    `rejected` out of range makes the REJECT one that names no record, which the engine isolates by splitting.
    Without this, a REJECT naming nobody in the batch would be re-sent at once, forever.
    """
    delivered, rejected = result.delivered, result.rejected
    bad_delivered = delivered is not None and any(not 0 <= index < size for index in delivered)
    bad_rejected = rejected is not None and any(not 0 <= index < size for index in rejected)
    if not bad_delivered and not bad_rejected:
        return result
    log.error(
        "connector bug: its result names records outside the batch; treated safely",
        destination=destination,
        outcome=result.outcome.value,
        records=size,
        delivered_out_of_range=sorted(i for i in delivered or () if not 0 <= i < size)[:10],
        rejected_out_of_range=sorted(i for i in rejected or () if not 0 <= i < size)[:10],
    )
    return SendResult(
        result.outcome,
        result.status,
        result.reason,
        result.detail,
        result.retry_after,
        None if bad_rejected else rejected,
        None if bad_delivered else delivered,
        0 if bad_delivered else result.duplicates,
    )


def _reindexed(result: SendResult, removed: list[int]) -> SendResult:
    """Shift a partial result's `rejected` indexes after the delivered records were taken out (its duplicates are
    already counted with them)."""
    if not result.rejected:
        return SendResult(
            result.outcome,
            result.status,
            result.reason,
            result.detail,
            result.retry_after,
            result.rejected,
            None,
            0,
        )
    rejected = frozenset(index - bisect.bisect_left(removed, index) for index in result.rejected)
    return SendResult(
        result.outcome,
        result.status,
        result.reason,
        result.detail,
        result.retry_after,
        rejected,
        None,
        0,
    )
