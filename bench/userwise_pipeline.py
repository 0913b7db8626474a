"""Benchmark: the UserWise pipeline end to end on the embedded broker, against the UserWise sandbox in another process.

UserWise takes one request per player and endpoint run, so the figures are events/s *and* requests/s at 10k players.
Prints: end-to-end events/s and requests/s from a backlog (commits included), records per request, peak RSS of the
gateway process, and produce → vendor-receive latency percentiles at a fixed input rate.
Run: .venv/bin/python bench/userwise_pipeline.py [--events 100000] [--players 10000] [--rate 3000] [--seconds 20]
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

from connectors.userwise import connector
from gateway import config as config_module
from gateway.app import Gateway
from gateway.events import decode
from gateway.logs import configure
from gateway.testbed.broker import EmbeddedBroker
from gateway.testbed.traffic import Traffic, message

KEY, SECRET = "bench-userwise-key", "bench-userwise-secret"
PARTITIONS = 6
OVERRIDES: dict[str, Any] = {}


def _sandbox_process(port: int, conn: Connection) -> None:
    """Serve the UserWise sandbox in its own process; answer questions over the pipe."""
    from gateway.sandbox.server import SandboxServer  # noqa: PLC0415 - child process only
    from gateway.sandbox.userwise import UserWiseSandbox  # noqa: PLC0415

    async def main() -> None:
        sandbox = UserWiseSandbox({KEY: "default"}, SECRET)
        async with SandboxServer(sandbox.app(), "127.0.0.1", port):
            conn.send("ready")
            loop = asyncio.get_running_loop()
            while True:
                request = await loop.run_in_executor(None, conn.recv)
                log = sandbox.app_log("default")
                if request == "stop":
                    return
                if request == "count":
                    conn.send(len(log.event_uids))
                elif request == "stats":
                    conn.send({"requests": sandbox.stats.accepted, "duplicates": log.duplicates})
                elif request == "first_seen":
                    conn.send(dict(log.first_seen))
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


def _events(count: int, players: int, prefix: str) -> tuple[list[tuple[bytes | None, bytes]], set[str]]:
    """UserWise-bound messages, and the event_uids that must arrive as events (the completion and latency probe)."""
    traffic = Traffic(seed=77, players=players, prefix=prefix)
    options = connector.options_model.model_validate({})
    out: list[tuple[bytes | None, bytes]] = []
    uids: set[str] = set()
    while len(out) < count:
        event = traffic.event()
        if event["type"] == "revenue":
            event["player_id"] = f"p{len(out) % players:06d}"  # the generator's revenue is operator-level
        records = connector.map(decode(orjson.dumps(event)), options)
        if records:
            out.append(message(event))
            if any(record.route == "events" for record in records):
                uids.add(event["event_id"])
    return out, uids


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


def _produce_backlog(bootstrap: str, topic: str, count: int, players: int) -> None:
    asyncio.run(_produce(bootstrap, topic, _events(count, players, "bl")[0]))


def _in_child(target: Any, *args: Any) -> None:
    process = mp.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {process.exitcode}")


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
                "name": "userwise",
                "connector": "userwise",
                "base_url": url,
                "credentials": {"default": {"api_key": KEY, "secret_key": SECRET}},
                **OVERRIDES,
            }
        ],
    }


async def _committed_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="bench.userwise", enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def _start(broker: EmbeddedBroker, topic: str, url: str) -> tuple[Gateway, asyncio.Task[None]]:
    gateway = Gateway(config_module.parse(_tree(broker.bootstrap_servers, topic, url), env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
        await asyncio.sleep(0.05)
    return gateway, task


async def _peak_rss(peak: list[int]) -> None:
    process = psutil.Process(os.getpid())
    while True:
        peak[0] = max(peak[0], process.memory_info().rss)
        await asyncio.sleep(0.1)


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, count: int, players: int) -> None:
    """Produce a backlog, then time the pipeline from start until everything is delivered and committed."""
    topic = "bench-uw-backlog"
    await broker.create_topic(topic, PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", 1)
    print(f"producing a backlog of {count} UserWise-bound events over {players} players (child process) ...")
    await asyncio.to_thread(_in_child, _produce_backlog, broker.bootstrap_servers, topic, count, players)
    expected = len(_events(count, players, "bl")[1])
    peak, baseline = [0], psutil.Process().memory_info().rss
    sampling = asyncio.create_task(_peak_rss(peak))
    gateway, task = await _start(broker, topic, sandbox.url)
    started = time.perf_counter()
    while await sandbox.ask("count") < expected:
        await asyncio.sleep(0.1)
    delivered_at = time.perf_counter()
    while await _committed_total(broker.bootstrap_servers, topic) < count:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stats = await sandbox.ask("stats")
    gateway.stop()
    await task
    sampling.cancel()
    print(
        f"end-to-end (backlog {count}, commits included): {count / elapsed:,.0f} events/s, "
        f"{stats['requests'] / elapsed:,.0f} requests/s ({elapsed:.2f} s; delivered after "
        f"{delivered_at - started:.2f} s; {count / max(1, stats['requests']):.2f} events per request; "
        f"{stats['duplicates']} duplicates)"
    )
    print(f"gateway process RSS: baseline {baseline / 2**20:.0f} MiB, peak {peak[0] / 2**20:.0f} MiB")


async def fixed_rate(
    broker: EmbeddedBroker, sandbox: SandboxProcess, rate: float, seconds: float, players: int
) -> None:
    """Produce at a fixed rate into a running gateway; latency = produce time → vendor receive time."""
    topic = "bench-uw-rate"
    await broker.create_topic(topic, PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", 1)
    await sandbox.ask("reset")
    count = int(rate * seconds)
    messages, probes = _events(count, players, "fr")
    ids = [orjson.loads(value)["event_id"] for _, value in messages]
    gateway, task = await _start(broker, topic, sandbox.url)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
    await producer.start()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    step = 50
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
    while await sandbox.ask("count") < len(probes):
        await asyncio.sleep(0.1)
    stats = await sandbox.ask("stats")
    received: dict[str, float] = await sandbox.ask("first_seen")
    latencies = [received[i] - sent_at[i] for i in probes if i in received]
    gateway.stop()
    await task
    linger = _tree("", "", "")["destinations"][0].get("batch", {}).get("linger_ms", connector.defaults.linger_ms)
    print(
        f"latency at {rate:,.0f} events/s for {seconds:.0f} s over {players} players (produce → vendor receive, "
        f"linger {linger} ms): p50 {_pct(latencies, 0.5) * 1000:.0f} ms, p99 {_pct(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; {stats['requests']} requests ({count / max(1, stats['requests']):.2f} "
        f"events per request)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=None, help="override the destination's concurrency")
    parser.add_argument("--max-events", type=int, default=None, help="override the destination's batch max_events")
    args = parser.parse_args()
    if args.concurrency:
        OVERRIDES["concurrency"] = args.concurrency
    if args.max_events:
        OVERRIDES["batch"] = {"max_events": args.max_events}
    configure("warning", "json")
    sandbox = SandboxProcess()
    try:
        async with EmbeddedBroker() as broker:
            await backlog(broker, sandbox, args.events, args.players)
            await fixed_rate(broker, sandbox, args.rate, args.seconds, args.players)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
