"""Benchmark: the Unibo pipeline end to end on the embedded broker, against the Unibo sandbox in another process.

Prints: the raw aiokafka consume rate on the same topic (the ceiling), end-to-end events/s from a backlog with
offset commits included, delivery latency percentiles at a fixed input rate, peak RSS of the gateway process, and the
event loop's stalls during the drain (how late a 1 ms sleep woke: the longest any other task waited).
Run: .venv/bin/python bench/unibo_pipeline.py [--events 200000] [--rate 10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    PARTITIONS,
    LoopStalls,
    RssSampler,
    SandboxProcess,
    create_topics,
    drain,
    gateway_tree,
    in_child,
    latencies,
    latency_summary,
    messages,
    produce,
    produce_at_rate,
    running_gateway,
    unibo_answer,
    unibo_destination,
    unibo_sandbox,
)

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import unibo_takes
from gateway import event_loop
from gateway.logs import configure

OVERRIDES: dict[str, Any] = {}


def _produce_backlog(bootstrap: str, topic: str, count: int) -> None:
    asyncio.run(produce(bootstrap, topic, messages(count, "bl", unibo_takes)))


async def _raw_consume_rate(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        seen = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(m) for m in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _tree(bootstrap: str, topic: str, url: str) -> dict[str, Any]:
    return gateway_tree(bootstrap, topic, {**unibo_destination(url), **OVERRIDES})


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, count: int) -> None:
    """Produce a backlog, then time the pipeline from start until everything is delivered and committed."""
    topic = "bench-backlog"
    await create_topics(broker, topic)
    print(f"producing a backlog of {count} Unibo events (in a child process) ...", flush=True)
    await asyncio.to_thread(in_child, _produce_backlog, broker.bootstrap_servers, topic, count)
    tree = _tree(broker.bootstrap_servers, topic, sandbox.url)
    async with RssSampler() as rss, LoopStalls() as stalls, running_gateway(tree):
        delivered, elapsed = await drain(sandbox, tree, count, count, poll=0.1)
    print(
        f"end-to-end (backlog {count}, commits included): {count / elapsed:,.0f} events/s "
        f"({elapsed:.2f} s; all delivered after {delivered:.2f} s)"
    )
    print(rss.summary())
    print(stalls.summary())
    raw = await _raw_consume_rate(broker.bootstrap_servers, topic, count)
    print(f"ceiling: raw aiokafka consume on the same topic: {raw:,.0f} events/s")


async def fixed_rate(broker: EmbeddedBroker, sandbox: SandboxProcess, rate: float, seconds: float) -> None:
    """Produce at a fixed rate into a running gateway; latency = produce time → vendor receive time."""
    topic = "bench-rate"
    await create_topics(broker, topic)
    await sandbox.ask("reset")
    count = int(rate * seconds)
    batch = messages(count, "fr", unibo_takes)
    async with running_gateway(_tree(broker.bootstrap_servers, topic, sandbox.url)):
        sent_at = await produce_at_rate(broker.bootstrap_servers, topic, batch, rate, step=100, linger_ms=5)
        await sandbox.wait_for_count(count)
        waits = latencies(sent_at, await sandbox.ask("received"))
    print(
        f"latency at {rate:,.0f} events/s for {seconds:.0f} s (produce → vendor receive, linger 500 ms): "
        + latency_summary(waits)
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-in-flight", type=int, default=None, help="override the destination's max_in_flight")
    parser.add_argument("--concurrency", type=int, default=None, help="override the destination's concurrency")
    args = parser.parse_args()
    if args.max_in_flight:
        OVERRIDES["max_in_flight"] = args.max_in_flight
    if args.concurrency:
        OVERRIDES["concurrency"] = args.concurrency
    configure("warning", "json")
    with SandboxProcess(unibo_sandbox, unibo_answer) as sandbox:
        async with EmbeddedBroker() as broker:
            await backlog(broker, sandbox, args.events)
            await fixed_rate(broker, sandbox, args.rate, args.seconds)


if __name__ == "__main__":
    event_loop.run(main())
