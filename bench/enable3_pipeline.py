"""Benchmark: the Enable3 pipeline (one request per event) against the Enable3 sandbox in another process.

For each concurrency (lanes per tenant): requests/s draining a backlog (offset commits included; one request is one
event), then produce → vendor-receive latency percentiles at a fixed rate of half that throughput.
Run: .venv/bin/python bench/enable3_pipeline.py [--events 30000] [--concurrency 1 16 64] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
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
from gateway.testbed.traffic import Traffic, message

KEY = "bench-enable3-key"
PARTITIONS = 6
MISSIONS = frozenset({"deposit", "withdrawal", "gameround", "login", "custom"})


def _sandbox_process(port: int, conn: Connection) -> None:
    """Serve the Enable3 sandbox in its own process; answer 'count', 'received' and 'reset' over the pipe."""
    from gateway.sandbox.enable3 import Enable3Sandbox  # noqa: PLC0415 - child process only
    from gateway.sandbox.server import SandboxServer  # noqa: PLC0415

    async def main() -> None:
        sandbox = Enable3Sandbox({KEY: "default"})
        async with SandboxServer(sandbox.app(), "127.0.0.1", port):
            conn.send("ready")
            loop = asyncio.get_running_loop()
            while True:
                request = await loop.run_in_executor(None, conn.recv)
                if request == "stop":
                    return
                if request == "count":
                    conn.send(sandbox.total_events)
                elif request == "received":
                    conn.send(dict(sandbox.tenant("default").events))
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


def _takes(event: dict[str, Any]) -> bool:
    if event["type"] not in MISSIONS:
        return False
    if event["type"] == "login":
        return bool(event.get("success", True))
    return bool(event.get("status", "success") == "success")


def _events(count: int, prefix: str) -> list[tuple[bytes | None, bytes]]:
    traffic = Traffic(seed=99, players=20_000, prefix=prefix)
    out: list[tuple[bytes | None, bytes]] = []
    while len(out) < count:
        event = traffic.event()
        if _takes(event):
            out.append(message(event))
    return out


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _tree(bootstrap: str, topic: str, url: str, concurrency: int) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "group_prefix": f"bench-{topic}",
            "session_timeout_ms": 6000,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": "warning", "format": "json"},
        "destinations": [
            {
                "name": "enable3",
                "connector": "enable3",
                "base_url": url,
                "credentials": {"default": {"api_key": KEY}},
                "concurrency": concurrency,
            }
        ],
    }


async def _committed_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-{topic}.enable3")
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def _started(
    broker: EmbeddedBroker, topic: str, url: str, concurrency: int
) -> tuple[Gateway, asyncio.Task[None]]:
    await broker.create_topic(topic, PARTITIONS, exist_ok=True)
    await broker.create_topic(f"{topic}.dlq", 1, exist_ok=True)
    gateway = Gateway(config_module.parse(_tree(broker.bootstrap_servers, topic, url, concurrency), env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
        await asyncio.sleep(0.05)
    return gateway, task


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, concurrency: int, count: int) -> float:
    """Requests/s draining a backlog of `count` events (one request each), commits included."""
    topic = f"bench-backlog-c{concurrency}"
    await sandbox.ask("reset")
    await broker.create_topic(topic, PARTITIONS)
    await _produce(broker.bootstrap_servers, topic, _events(count, f"bl{concurrency}"))
    cpu = psutil.Process()
    cpu_before = cpu.cpu_times()
    gateway, task = await _started(broker, topic, sandbox.url, concurrency)
    started = time.perf_counter()
    while await sandbox.ask("count") < count:
        await asyncio.sleep(0.05)
    delivered_at = time.perf_counter()
    while await _committed_total(broker.bootstrap_servers, topic) < count:
        await asyncio.sleep(0.05)
    committed_at = time.perf_counter()
    gateway.stop()
    await task
    cpu_after = cpu.cpu_times()
    used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    rate = count / (delivered_at - started)
    print(
        f"concurrency {concurrency:>3}: backlog {count} events: {rate:,.0f} requests/s "
        f"= events/s delivered ({delivered_at - started:.2f} s); "
        f"{count / (committed_at - started):,.0f} events/s to the last commit "
        f"({committed_at - started:.2f} s, commit_interval 1 s; "
        f"gateway CPU {used / (committed_at - started) * 100:.0f}% of one core, "
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
    messages = _events(count, f"fr{concurrency}")
    ids = [orjson.loads(value)["event_id"] for _, value in messages]
    gateway, task = await _started(broker, topic, sandbox.url, concurrency)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1)
    await producer.start()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    step = max(1, int(rate / 100))  # ~10 ms slices
    for index in range(0, count, step):
        delay = started + index / rate - time.monotonic()
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
        await asyncio.sleep(0.05)
    received: dict[str, float] = await sandbox.ask("received")
    latencies = [received[i] - sent_at[i] for i in ids if i in received]
    gateway.stop()
    await task
    print(
        f"concurrency {concurrency:>3}: latency at {rate:,.0f} events/s for {seconds:.0f} s (produce → Enable3 "
        f"receive, linger 5 ms): p50 {_pct(latencies, 0.5) * 1000:.0f} ms, p99 {_pct(latencies, 0.99) * 1000:.0f} ms,"
        f" max {max(latencies) * 1000:.0f} ms",
        flush=True,
    )


async def broker_latency(broker: EmbeddedBroker, count: int = 300) -> None:
    """The floor under every latency figure: raw aiokafka produce → consume on the embedded broker at ~100/s."""
    await broker.create_topic("bench-floor", 1)
    consumer = AIOKafkaConsumer("bench-floor", bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1)
    await producer.start()
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < count:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            latencies.extend(now - float(m.value) for records in batches.values() for m in records)

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
        f"floor: raw produce → consume on the embedded broker at ~100/s: p50 {_pct(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {_pct(latencies, 0.99) * 1000:.0f} ms",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000, help="backlog size (concurrency 1 uses a tenth)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=8, help="length of each fixed-rate run")
    args = parser.parse_args()
    configure("warning", "json")
    sandbox = SandboxProcess()
    try:
        async with EmbeddedBroker() as broker:
            await broker_latency(broker)
            for concurrency in args.concurrency:
                count = args.events if concurrency > 1 else max(1000, args.events // 10)
                throughput = await backlog(broker, sandbox, concurrency, count)
                await fixed_rate(broker, sandbox, concurrency, round(throughput / 2), args.seconds)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
