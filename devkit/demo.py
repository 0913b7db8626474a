"""`gateway demo`: embedded broker, vendor sandboxes, sample traffic, the real gateway, a live view and a report."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from devkit.sandbox.faults import FaultInjector, FaultPlan
from devkit.sandbox.kind import FeedReader, SandboxKind
from devkit.sandbox.registry import READERS, SANDBOXES
from devkit.sandbox.server import SandboxServer
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.stats import percentile
from devkit.testbed.traffic import Traffic, message
from gateway import binding
from gateway.app import Gateway
from gateway.connector import VendorRecord
from gateway.destination import Destination
from gateway.errors import EventError
from gateway.events import decode
from gateway.logs import configure

TOPIC = "player-events"
# What a real stream also contains: bytes that are not JSON, an event that breaks the contract, an unknown brand.
POISON: tuple[bytes, ...] = (
    b"\x00\x01 not json",
    orjson.dumps({"event_id": "bad-1", "type": "deposit", "occurred_at": "2026-11-01T12:00:00Z", "player_id": "p1"}),
    orjson.dumps(
        {
            "event_id": "bad-2",
            "type": "login",
            "occurred_at": "2026-11-01T12:00:00Z",
            "player_id": "p1",
            "brand": "no-such-brand",
        }
    ),
)


@dataclass
class Vendor:
    """One demo destination: its sandbox, how to tell what it received, and how to inject its faults."""

    name: str
    received: Callable[[], set[str]]  # ids the vendor stored (ids as `expected_id` spells them)
    expected_id: Callable[[VendorRecord], str | None]  # the id a record shows up under; None: not checked by id
    inject_faults: Callable[[], None]
    refuse: Callable[[set[str]], None] | None  # make the vendor reject these ids (a bad item, dead-lettered)
    injected: Callable[[], int]
    arrivals: Callable[[], dict[str, float]]  # id -> when the vendor first stored it (time.time())
    how: str = ""  # how "received" is observed, when it is not the sandbox's own record
    expected: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    produced_at: dict[str, float] = field(default_factory=dict)
    destination: Destination | None = None


@dataclass
class DemoRun:
    """What the demo produced."""

    produced: int = 0
    vendors: list[Vendor] = field(default_factory=list)


def _records(destination: Destination, raw: bytes) -> list[VendorRecord]:
    """What this destination sends for one message, by the same routing the pipeline applies (empty: nothing)."""
    try:
        event = decode(raw)
        if event.type not in destination.events:
            return []
        return list(destination.connector.map(event, destination.options))
    except EventError:
        return []  # dead-lettered: invalid, unmappable or an unsupported currency


def _expect(run: DemoRun, raw: bytes, index: int, count: int, faults: bool) -> None:
    now = time.time()
    for vendor in run.vendors:
        assert vendor.destination is not None
        for record in _records(vendor.destination, raw):
            record_id = vendor.expected_id(record)
            if record_id is None:
                continue
            if faults and vendor.refuse is not None and not vendor.rejected and index >= count // 3:
                vendor.rejected.add(record_id)  # the vendor will refuse this one item; it goes to the DLQ
                vendor.refuse(vendor.rejected)
                continue
            vendor.expected.add(record_id)
            vendor.produced_at[record_id] = now


async def _produce(bootstrap: str, run: DemoRun, count: int, rate: float, faults: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    rng = random.Random(3)
    try:
        traffic = Traffic(seed=42, players=2000, prefix="demo")
        started = time.monotonic()
        for index, event in enumerate(traffic.stream(count)):
            if faults and index == count // 5:
                for vendor in run.vendors:
                    vendor.inject_faults()
            key, value = message(event)
            _expect(run, value, index, count, faults)
            await producer.send(TOPIC, value, key=key)
            run.produced += 1
            if index % 5000 == 2500:
                await producer.send(TOPIC, rng.choice(POISON), key=b"p1")
                run.produced += 1
            if rate > 0:
                delay = started + (index + 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif index % 2000 == 0:
                await asyncio.sleep(0)
        await producer.flush()
    finally:
        await producer.stop()


def _value(registry: CollectorRegistry, name: str, destination: str) -> float:
    return registry.get_sample_value(name, {"destination": destination}) or 0.0


def _progress(gateway: Gateway, run: DemoRun, started: float) -> str:
    registry = gateway.registry
    parts = [f"[{time.monotonic() - started:5.1f}s] produced {run.produced:>6}"]
    for vendor in run.vendors:
        done = len(vendor.expected & vendor.received())
        up = _value(registry, "gateway_destination_up", vendor.name)
        parts.append(f"{vendor.name} {done:>6}/{len(vendor.expected):<6}{'' if up else ' (down)'}")
    parts.append(f"retries {_sum_samples(registry, 'gateway_delivery_retries_total'):>4.0f}")
    parts.append(f"dead-lettered {_sum_samples(registry, 'gateway_events_dead_lettered_total'):>3.0f}")
    return "  ".join(parts)


def _sum_samples(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _dead_letters_by_reason(registry: CollectorRegistry, destination: str) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "gateway_events_dead_lettered_total" and sample.labels["destination"] == destination:
                reasons[sample.labels["reason"]] += int(sample.value)
    return reasons


def _burst(faults: FaultInjector) -> Callable[[], None]:
    def inject() -> None:
        faults.add(FaultPlan(kind="status", status=503, count=3))
        faults.add(FaultPlan(kind="rate_limit", retry_after=1, count=2))

    return inject


async def _sandbox(stack: AsyncExitStack, kind: SandboxKind[Any], seed: int) -> tuple[Vendor, dict[str, Any]]:
    """A push vendor: its sandbox served on a free port, and a destination delivering to it."""
    key, settings = f"demo-{kind.name}-key", kind.defaults()
    sandbox = kind.build({key: "default"}, settings, seed)
    url = (await stack.enter_async_context(SandboxServer(sandbox.app()))).url
    vendor = Vendor(
        name=kind.name,
        received=lambda: kind.received(sandbox, "default"),
        expected_id=kind.expected_id,
        inject_faults=_burst(sandbox.faults),
        refuse=lambda ids: kind.refuse(sandbox, ids),
        injected=lambda: sandbox.faults.total_injected,
        arrivals=lambda: kind.arrivals(sandbox, "default"),
    )
    credentials = {"default": kind.credentials(key, settings)}
    retry = {"initial": 0.1, "max": 2.0}
    return vendor, {"base_url": url, "credentials": credentials, "retry": retry, **kind.destination}


def _reader(reader: FeedReader, name: str) -> Vendor:
    """A pull vendor: what it "received" is what its reader read back from the gateway's feeds."""
    return Vendor(
        name=name,
        received=reader.received,
        expected_id=reader.expected_id,
        inject_faults=lambda: None,
        refuse=None,
        injected=lambda: 0,
        arrivals=dict,
        how=reader.how,
    )


def _config(broker: str, destinations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": broker,
            "topics": [TOPIC],
            "dlq_topic": f"{TOPIC}.dlq",
            "group_prefix": "demo",
            "session_timeout_ms": 6000,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": "warning", "format": "console"},
        "destinations": destinations,
    }


async def _demo(events: int, rate: float, faults: bool) -> int:
    out = sys.stdout
    print("event-gateway demo: starting the embedded Kafka-compatible broker (Tansu) and vendor sandboxes", file=out)
    async with AsyncExitStack() as stack:
        broker = await stack.enter_async_context(EmbeddedBroker())
        await broker.create_topic(TOPIC, partitions=6)
        await broker.create_topic(f"{TOPIC}.dlq", partitions=1)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-demo-")))
        run = DemoRun()
        urls: dict[str, str] = {}
        destinations: list[dict[str, Any]] = []
        for seed, kind in enumerate(SANDBOXES.values(), start=5):
            vendor, keys = await _sandbox(stack, kind, seed)
            run.vendors.append(vendor)
            urls[kind.name] = keys["base_url"]
            destinations.append({"name": kind.name, "connector": kind.name, **keys})
        readers: list[FeedReader] = []
        for reader_kind in READERS.values():
            feed_port = free_port()
            readers.append(reader_kind.reader(feed_port))
            run.vendors.append(_reader(readers[-1], reader_kind.name))
            urls[f"{reader_kind.name} feed"] = f"http://127.0.0.1:{feed_port}/{reader_kind.name}/<feed>"
            keys = reader_kind.destination(workdir, feed_port)
            destinations.append({"name": reader_kind.name, "connector": reader_kind.name, **keys})
        gateway = Gateway(binding.parse(_config(broker.bootstrap_servers, destinations), env={}))
        for vendor in run.vendors:
            vendor.destination = gateway.config.destination(vendor.name)
        gateway_task = asyncio.create_task(gateway.run(install_signals=False))
        print(f"broker {broker.bootstrap_servers}", file=out)
        for name, url in urls.items():
            print(f"{name:<14}{url}", file=out)
        while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
            if gateway_task.done():
                gateway_task.result()
            await asyncio.sleep(0.1)
        assert gateway.http is not None
        print(f"gateway joined its consumer groups; metrics at {gateway.http.url}/metrics", file=out)
        print(f"producing {events} events" + (f" at {rate:.0f}/s" if rate else " as fast as possible"), file=out)
        started = time.monotonic()
        producer = asyncio.create_task(_produce(broker.bootstrap_servers, run, events, rate, faults))
        for reader in readers:
            reader.start()  # pull vendors read from when the traffic starts, not from start-up
        deadline = time.monotonic() + max(180.0, events / 300)
        try:
            await _watch(gateway, gateway_task, producer, run, started, deadline)
        finally:  # also when the gateway failed: stop the producer and the readers, then drain the gateway
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            for reader in readers:
                await reader.stop()
            gateway.stop()
            await gateway_task
        print("", file=out)
        return _report(gateway, run, time.monotonic() - started)


async def _watch(
    gateway: Gateway,
    gateway_task: asyncio.Task[None],
    producer: asyncio.Task[None],
    run: DemoRun,
    started: float,
    deadline: float,
) -> None:
    """Print a progress line until every vendor has every expected record and nothing is in flight (or the deadline)."""
    out = sys.stdout
    tty = out.isatty()
    last_line = 0.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if gateway_task.done():
            gateway_task.result()
        done = producer.done() and all(v.expected <= v.received() for v in run.vendors)
        now = time.monotonic()
        if tty or now - last_line >= 2 or done:
            line = _progress(gateway, run, started)
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
            last_line = now
        if done and all(_value(gateway.registry, "gateway_in_flight_events", v.name) == 0 for v in run.vendors):
            return


def _report(gateway: Gateway, run: DemoRun, elapsed: float) -> int:
    registry = gateway.registry
    print("── delivery report ─────────────────────────────────────────────────────────")
    print(f"produced            {run.produced} messages to {TOPIC} (with a few poison messages)")
    missing_any = False
    for vendor in run.vendors:
        received = vendor.received()
        missing = vendor.expected - received
        missing_any = missing_any or bool(missing)
        reasons = _dead_letters_by_reason(registry, vendor.name)
        filtered = _value(registry, "gateway_events_filtered_total", vendor.name)
        duplicates = _value(registry, "gateway_events_duplicate_total", vendor.name)
        retries = _sum_samples(registry, "gateway_delivery_retries_total", destination=vendor.name)
        arrivals = vendor.arrivals()
        latencies = [arrivals[i] - vendor.produced_at[i] for i in vendor.expected & received if i in arrivals]
        print(f"{vendor.name}")
        delivered = len(vendor.expected & received)
        print(f"  delivered         {delivered} of {len(vendor.expected)} expected records{vendor.how}")
        print(f"  filtered          {filtered:.0f}  (types and statuses {vendor.name} does not take)")
        print(
            f"  dead-lettered     {sum(reasons.values())}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
            + (f"  (the vendor refused {len(vendor.rejected)} on purpose)" if vendor.refuse is not None else "")
        )
        print(f"  retried sends     {retries:.0f}  (injected faults: {vendor.injected()}; duplicates {duplicates:.0f})")
        if latencies:
            p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            print(f"  latency           produce -> vendor p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        if missing:
            print(f"  MISSING {len(missing)} records, e.g. {sorted(missing)[:5]}")
    print(f"elapsed             {elapsed:.1f} s")
    if missing_any:
        return 1
    print("verified: every expected record reached its vendor; failures are in the dead-letter topic with reasons")
    return 0


def run_demo(events: int = 20_000, rate: float = 0.0, faults: bool = True) -> int:
    """Run the demo; exit code 0 when every expected record was delivered to every vendor."""
    configure("warning", "console")
    return asyncio.run(_demo(events, rate, faults))
