"""Benchmark: the Enable3 pipeline (one request per event) against the Enable3 sandbox in another process.

For each concurrency (lanes per tenant): requests/s draining a backlog (offset commits included; one request is one
event), then produce → vendor-receive latency percentiles at a fixed rate of half that throughput.
Run: .venv/bin/python bench/enable3_pipeline.py [--events 30000] [--concurrency 1 16 64] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from harness import (
    SandboxProcess,
    create_topics,
    drain,
    gateway_tree,
    latencies,
    latency_summary,
    messages,
    produce,
    produce_at_rate,
    running_gateway,
)

from devkit.testbed.broker import EmbeddedBroker
from gateway import event_loop
from gateway.logs import configure

if TYPE_CHECKING:
    from devkit.sandbox.enable3.sandbox import Enable3Sandbox

KEY = "bench-enable3-key"
MISSIONS = frozenset({"deposit", "withdrawal", "gameround", "login", "custom"})


def _sandbox() -> Enable3Sandbox:
    """The Enable3 sandbox, built in the sandbox process."""
    from devkit.sandbox.enable3.sandbox import Enable3Sandbox  # noqa: PLC0415 - child process only

    return Enable3Sandbox({KEY: "default"})


def _answer(sandbox: Enable3Sandbox, request: str) -> Any:
    """'count': events stored; 'received': event id -> receive time."""
    if request == "count":
        return sandbox.total_events
    return dict(sandbox.tenant("default").events)


def _takes(event: dict[str, Any]) -> bool:
    if event["type"] not in MISSIONS:
        return False
    if event["type"] == "login":
        return bool(event.get("success", True))
    return bool(event.get("status", "success") == "success")


def _tree(bootstrap: str, topic: str, url: str, concurrency: int) -> dict[str, Any]:
    destination = {
        "name": "enable3",
        "connector": "enable3",
        "base_url": url,
        "credentials": {"default": {"api_key": KEY}},
        "concurrency": concurrency,
    }
    return gateway_tree(bootstrap, topic, destination, group_prefix=f"bench-{topic}")


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, concurrency: int, count: int) -> float:
    """Requests/s draining a backlog of `count` events (one request each), commits included."""
    topic = f"bench-backlog-c{concurrency}"
    await sandbox.ask("reset")
    await create_topics(broker, topic)
    await produce(broker.bootstrap_servers, topic, messages(count, f"bl{concurrency}", _takes))
    cpu = psutil.Process()
    cpu_before = cpu.cpu_times()
    tree = _tree(broker.bootstrap_servers, topic, sandbox.url, concurrency)
    async with running_gateway(tree):
        delivered, committed = await drain(sandbox, tree, count, count, poll=0.05)
    cpu_after = cpu.cpu_times()
    used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    rate = count / delivered
    print(
        f"concurrency {concurrency:>3}: backlog {count} events: {rate:,.0f} requests/s "
        f"= events/s delivered ({delivered:.2f} s); "
        f"{count / committed:,.0f} events/s to the last commit "
        f"({committed:.2f} s, commit_interval 1 s; "
        f"gateway CPU {used / committed * 100:.0f}% of one core, "
        f"RSS {cpu.memory_info().rss / 2**20:.0f} MiB)",
        flush=True,
    )
    return rate


async def fixed_rate(
    broker: EmbeddedBroker, sandbox: SandboxProcess, concurrency: int, rate: float, seconds: float
) -> None:
    """Produce at `rate` into a running gateway; latency = produce time → sandbox receive time."""
    topic = f"bench-rate-c{concurrency}"
    await sandbox.ask("reset")
    count = max(100, int(rate * seconds))
    batch = messages(count, f"fr{concurrency}", _takes)
    await create_topics(broker, topic)
    async with running_gateway(_tree(broker.bootstrap_servers, topic, sandbox.url, concurrency)):
        step = max(1, int(rate / 100))  # ~10 ms slices
        sent_at = await produce_at_rate(broker.bootstrap_servers, topic, batch, rate, step, linger_ms=1)
        await sandbox.wait_for_count(count, poll=0.05)
        waits = latencies(sent_at, await sandbox.ask("received"))
    print(
        f"concurrency {concurrency:>3}: latency at {rate:,.0f} events/s for {seconds:.0f} s (produce → Enable3 "
        f"receive, linger 5 ms): {latency_summary(waits)}",
        flush=True,
    )


async def broker_latency(broker: EmbeddedBroker, count: int = 300) -> None:
    """The floor under every latency figure: raw aiokafka produce → consume on the embedded broker at ~100/s."""
    await broker.create_topic("bench-floor", 1)
    consumer = AIOKafkaConsumer("bench-floor", bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1)
    await producer.start()
    waits: list[float] = []

    async def consume() -> None:
        while len(waits) < count:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            waits.extend(now - float(m.value) for records in batches.values() for m in records)

    try:
        reading = asyncio.create_task(consume())
        for _ in range(count):
            await producer.send("bench-floor", str(time.time()).encode())
            await asyncio.sleep(0.01)
        await reading
    finally:
        await producer.stop()
        await consumer.stop()
    print(
        f"floor: raw produce → consume on the embedded broker at ~100/s: {latency_summary(waits, with_max=False)}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000, help="backlog size (concurrency 1 uses a tenth)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=8, help="length of each fixed-rate run")
    args = parser.parse_args()
    configure("warning", "json")
    with SandboxProcess(_sandbox, _answer) as sandbox:
        async with EmbeddedBroker() as broker:
            await broker_latency(broker)
            for concurrency in args.concurrency:
                count = args.events if concurrency > 1 else max(1000, args.events // 10)
                throughput = await backlog(broker, sandbox, concurrency, count)
                await fixed_rate(broker, sandbox, concurrency, round(throughput / 2), args.seconds)


if __name__ == "__main__":
    event_loop.run(main())
