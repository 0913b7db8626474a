"""`gateway demo`: embedded broker, vendor sandboxes, sample traffic, the real gateway, a live view and a report."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from gateway import config as config_module
from gateway.app import Gateway
from gateway.logs import configure
from gateway.sandbox.faults import FaultPlan
from gateway.sandbox.server import SandboxServer
from gateway.sandbox.unibo import UniboSandbox
from gateway.testbed.broker import EmbeddedBroker
from gateway.testbed.traffic import Traffic, message, unibo_takes

TOPIC = "player-events"
UNIBO_KEY = "demo-unibo-key"
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
class DemoRun:
    """What the demo produced and expects."""

    expected: set[str] = field(default_factory=set)
    produced_at: dict[str, float] = field(default_factory=dict)
    produced: int = 0
    rejected_ids: set[str] = field(default_factory=set)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _produce(bootstrap: str, run: DemoRun, count: int, rate: float, unibo: UniboSandbox, faults: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    rng = random.Random(3)
    try:
        traffic = Traffic(seed=42, players=2000, prefix="demo")
        started = time.monotonic()
        for index, event in enumerate(traffic.stream(count)):
            if faults and index == count // 5:
                unibo.faults.add(FaultPlan(kind="status", status=503, count=3))
                unibo.faults.add(FaultPlan(kind="rate_limit", retry_after=1, count=2))
            if faults and index == count // 3 and event["type"] == "gameround":
                run.rejected_ids.add(event["event_id"])  # the vendor will refuse this one item (422)
                unibo.set_fail_items(run.rejected_ids)
            key, value = message(event)
            if unibo_takes(event) and event["event_id"] not in run.rejected_ids:
                run.expected.add(event["event_id"])
            run.produced_at[event["event_id"]] = time.time()
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


def _progress(gateway: Gateway, run: DemoRun, unibo: UniboSandbox, started: float) -> str:
    def value(name: str, **labels: str) -> float:
        return gateway.registry.get_sample_value(name, {"destination": "unibo", **labels}) or 0.0

    dead = sum(
        gateway.registry.get_sample_value("gateway_events_dead_lettered_total", {"destination": "unibo", "reason": r})
        or 0.0
        for r in ("invalid_json", "invalid_event", "unknown_brand", "mapping_error", "rejected")
    )
    retries = _sum_samples(gateway.registry, "gateway_delivery_retries_total")
    return (
        f"[{time.monotonic() - started:5.1f}s] produced {run.produced:>7}"
        f"  consumed {value('gateway_events_consumed_total'):>7.0f}"
        f"  delivered {unibo.total_unique:>7}  dead-lettered {dead:>3.0f}  retries {retries:>3.0f}"
        f"  in-flight {value('gateway_in_flight_events'):>6.0f}  up {value('gateway_destination_up'):.0f}"
    )


def _sum_samples(registry: CollectorRegistry, name: str) -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


def _dead_letters_by_reason(registry: CollectorRegistry) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "gateway_events_dead_lettered_total":
                reasons[sample.labels["reason"]] += int(sample.value)
    return reasons


async def _demo(events: int, rate: float, faults: bool) -> int:
    out = sys.stdout
    print("event-gateway demo: starting the embedded Kafka-compatible broker (Tansu) and the Unibo sandbox", file=out)
    async with EmbeddedBroker() as broker:
        await broker.create_topic(TOPIC, partitions=6)
        await broker.create_topic(f"{TOPIC}.dlq", partitions=1)
        unibo = UniboSandbox({UNIBO_KEY: "default"}, fault_seed=5)
        async with SandboxServer(unibo.app()) as sandbox:
            tree: dict[str, Any] = {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap_servers,
                    "topics": [TOPIC],
                    "dlq_topic": f"{TOPIC}.dlq",
                    "group_prefix": "demo",
                    "session_timeout_ms": 6000,
                },
                "http": {"listen": "127.0.0.1:0"},
                "logging": {"level": "warning", "format": "console"},
                "destinations": [
                    {
                        "name": "unibo",
                        "connector": "unibo",
                        "base_url": sandbox.url,
                        "credentials": {"default": {"api_key": UNIBO_KEY}},
                        "retry": {"initial": 0.1, "max": 2.0},
                    }
                ],
            }
            gateway = Gateway(config_module.parse(tree, env={}))
            gateway_task = asyncio.create_task(gateway.run(install_signals=False))
            print(f"broker {broker.bootstrap_servers}  unibo sandbox {sandbox.url}", file=out)
            while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
                if gateway_task.done():
                    gateway_task.result()
                await asyncio.sleep(0.1)
            assert gateway.http is not None
            print(f"gateway joined its consumer group; metrics at {gateway.http.url}/metrics", file=out)
            print(f"producing {events} events" + (f" at {rate:.0f}/s" if rate else " as fast as possible"), file=out)
            run = DemoRun()
            started = time.monotonic()
            producer = asyncio.create_task(_produce(broker.bootstrap_servers, run, events, rate, unibo, faults))
            tty = out.isatty()
            deadline = time.monotonic() + max(120.0, events / 500)
            last_line = 0.0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                if gateway_task.done():
                    gateway_task.result()
                done = producer.done() and run.expected.issubset(set(unibo.unique_ids("default")))
                now = time.monotonic()
                if tty or now - last_line >= 2 or done:
                    line = _progress(gateway, run, unibo, started)
                    print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
                    last_line = now
                if (
                    done
                    and (gateway.registry.get_sample_value("gateway_in_flight_events", {"destination": "unibo"}) or 0)
                    == 0
                ):
                    break
            producer.result() if producer.done() else producer.cancel()
            gateway.stop()
            await gateway_task
            print("", file=out)
            return _report(gateway, run, unibo, time.monotonic() - started)


def _report(gateway: Gateway, run: DemoRun, unibo: UniboSandbox, elapsed: float) -> int:
    received = unibo.tenant("default").received
    missing = run.expected - set(received)
    latencies = [received[i] - run.produced_at[i] for i in run.expected if i in received]
    reasons = _dead_letters_by_reason(gateway.registry)
    retries = _sum_samples(gateway.registry, "gateway_delivery_retries_total")
    filtered = _sum_samples(gateway.registry, "gateway_events_filtered_total")
    print("── delivery report ─────────────────────────────────────────────")
    print(f"produced            {run.produced}")
    print(
        f"delivered  unibo    {len(run.expected & set(received))} of {len(run.expected)} expected"
        f"  (vendor saw {unibo.tenant('default').duplicates} duplicates)"
    )
    print(f"filtered   unibo    {filtered:.0f}  (types and statuses Unibo does not take)")
    print(f"dead-lettered       {sum(reasons.values())}  " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    print(f"retried sends       {retries:.0f}  (injected faults: {unibo.faults.total_injected})")
    p50, p99 = _percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.99) * 1000
    print(f"latency produce→ack p50 {p50:.0f} ms   p99 {p99:.0f} ms")
    print(f"elapsed             {elapsed:.1f} s")
    if missing:
        print(f"MISSING {len(missing)} events, e.g. {sorted(missing)[:5]}")
        return 1
    print("verified: every expected event reached the vendor; failures are in the dead-letter topic with reasons")
    return 0


def run_demo(events: int = 20_000, rate: float = 0.0, faults: bool = True) -> int:
    """Run the demo; exit code 0 when every expected event was delivered."""
    configure("warning", "console")
    return asyncio.run(_demo(events, rate, faults))
