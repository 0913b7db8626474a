"""Benchmark: the Unibo pipeline end to end on the embedded broker, against the Unibo sandbox in another process.

Prints: the raw aiokafka consume rate on the same topic (the ceiling), end-to-end events/s from a backlog with
offset commits included, delivery latency percentiles at a fixed input rate, and peak RSS of the gateway process.
Run: .venv/bin/python bench/unibo_pipeline.py [--events 200000] [--rate 10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway import config as config_module
from gateway.app import Gateway
from gateway.logs import configure
from gateway.testbed.broker import EmbeddedBroker
from gateway.testbed.traffic import Traffic, message, unibo_takes

KEY = "bench-unibo-key"
PARTITIONS = 6


def _sandbox_process(port: int, conn: Connection) -> None:
    """Serve the Unibo sandbox in its own process; answer 'received' requests over the pipe."""
    from gateway.sandbox.server import SandboxServer  # noqa: PLC0415 - child process only
    from gateway.sandbox.unibo import UniboSandbox  # noqa: PLC0415

    async def main() -> None:
        sandbox = UniboSandbox({KEY: "default"})
        async with SandboxServer(sandbox.app(), "127.0.0.1", port):
            conn.send("ready")
            loop = asyncio.get_running_loop()
            while True:
                request = await loop.run_in_executor(None, conn.recv)
                if request == "stop":
                    return
                if request == "count":
                    conn.send(sandbox.total_unique)
                elif request == "received":
                    conn.send(dict(sandbox.tenant("default").received))
                elif request == "reset":
                    sandbox.reset()
                    conn.send("ok")

    asyncio.run(main())


class SandboxProcess:
    """The sandbox in a child process, so its CPU does not count against the gateway's event loop."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._conn, child = mp.Pipe()
        self._process = mp.get_context("spawn").Process(target=_sandbox_process, args=(self.port, child), daemon=True)
        self._process.start()
        assert self._conn.recv() == "ready"
        self._lock = asyncio.Lock()

    async def ask(self, request: str) -> Any:
        async with self._lock:
            self._conn.send(request)
            return await asyncio.to_thread(self._conn.recv)

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RssSampler:
    """Samples this process's resident memory."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self.peak = 0
        self.samples: list[int] = []

    async def run(self) -> None:
        while True:
            rss = self._process.memory_info().rss
            self.peak = max(self.peak, rss)
            self.samples.append(rss)
            await asyncio.sleep(0.1)


def _events(count: int, prefix: str) -> list[tuple[bytes | None, bytes]]:
    traffic = Traffic(seed=99, players=20_000, prefix=prefix)
    out: list[tuple[bytes | None, bytes]] = []
    while len(out) < count:
        event = traffic.event()
        if unibo_takes(event):
            out.append(message(event))
    return out


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _produce_backlog(bootstrap: str, topic: str, count: int) -> None:
    asyncio.run(_produce(bootstrap, topic, _events(count, "bl")))


def _in_child(target: Any, *args: Any) -> None:
    """Run `target` in a fresh process so its memory and CPU are not the gateway's."""
    process = mp.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {process.exitcode}")


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


OVERRIDES: dict[str, Any] = {}


def _tree(bootstrap: str, topic: str, url: str) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "group_prefix": "bench",
            "session_timeout_ms": 6000,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": "warning", "format": "json"},
        "destinations": [
            {
                "name": "unibo",
                "connector": "unibo",
                "base_url": url,
                "credentials": {"default": {"api_key": KEY}},
                **OVERRIDES,
            }
        ],
    }


async def _committed_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="bench.unibo", enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, count: int) -> None:
    """Produce a backlog, then time the pipeline from start until everything is delivered and committed."""
    topic = "bench-backlog"
    await broker.create_topic(topic, PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", 1)
    print(f"producing a backlog of {count} Unibo events (in a child process) ...", flush=True)
    await asyncio.to_thread(_in_child, _produce_backlog, broker.bootstrap_servers, topic, count)
    sampler = RssSampler()
    sampling = asyncio.create_task(sampler.run())
    baseline = psutil.Process().memory_info().rss
    gateway = Gateway(config_module.parse(_tree(broker.bootstrap_servers, topic, sandbox.url), env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    while await sandbox.ask("count") < count:
        await asyncio.sleep(0.1)
    delivered_at = time.perf_counter()
    while await _committed_total(broker.bootstrap_servers, topic) < count:
        await asyncio.sleep(0.05)
    committed_at = time.perf_counter()
    gateway.stop()
    await task
    sampling.cancel()
    elapsed = committed_at - started
    print(
        f"end-to-end (backlog {count}, commits included): {count / elapsed:,.0f} events/s "
        f"({elapsed:.2f} s; all delivered after {delivered_at - started:.2f} s)"
    )
    print(f"gateway process RSS: baseline {baseline / 2**20:.0f} MiB, peak {sampler.peak / 2**20:.0f} MiB")
    raw = await _raw_consume_rate(broker.bootstrap_servers, topic, count)
    print(f"ceiling: raw aiokafka consume on the same topic: {raw:,.0f} events/s")


async def fixed_rate(broker: EmbeddedBroker, sandbox: SandboxProcess, rate: float, seconds: float) -> None:
    """Produce at a fixed rate into a running gateway; latency = produce time → vendor receive time."""
    topic = "bench-rate"
    await broker.create_topic(topic, PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", 1)
    await sandbox.ask("reset")
    count = int(rate * seconds)
    messages = _events(count, "fr")
    ids = [orjson.loads(value)["event_id"] for _, value in messages]
    gateway = Gateway(config_module.parse(_tree(broker.bootstrap_servers, topic, sandbox.url), env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
        await asyncio.sleep(0.05)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
    await producer.start()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    step = 100
    for index in range(0, count, step):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for key, value in messages[index : index + step]:
            await producer.send(topic, value, key=key)
        now = time.time()
        for event_id in ids[index : index + step]:
            sent_at[event_id] = now
    await producer.flush()
    await producer.stop()
    while await sandbox.ask("count") < count:
        await asyncio.sleep(0.1)
    received: dict[str, float] = await sandbox.ask("received")
    latencies = [received[i] - sent_at[i] for i in ids if i in received]
    gateway.stop()
    await task
    print(
        f"latency at {rate:,.0f} events/s for {seconds:.0f} s (produce → vendor receive, linger 500 ms): "
        f"p50 {_pct(latencies, 0.5) * 1000:.0f} ms, p99 {_pct(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
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
    sandbox = SandboxProcess()
    try:
        async with EmbeddedBroker() as broker:
            await backlog(broker, sandbox, args.events)
            await fixed_rate(broker, sandbox, args.rate, args.seconds)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
