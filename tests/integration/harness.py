"""Integration-test harness: real broker, real sandboxes, the gateway in process or as a killable subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from devkit.testbed.traffic import message
from gateway import binding
from gateway.app import Gateway

ROOT = Path(__file__).resolve().parents[2]


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll until `predicate` holds; fail with `what` after `timeout` seconds (a bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def produce(
    bootstrap: str,
    topic: str,
    events: Iterable[dict[str, Any] | bytes],
    key: bytes | None = None,
    compression: str | None = None,
) -> list[tuple[int, int]]:
    """Produce events (dicts become JSON keyed by player; bytes go as they are); (partition, offset) of each.

    `compression` is the producer's compression_type (gzip, snappy, lz4, zstd), as production producers set it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024, compression_type=compression
    )
    await producer.start()
    try:
        futures = []
        for event in events:
            if isinstance(event, bytes):
                futures.append(await producer.send(topic, event, key=key))
            else:
                event_key, value = message(event)
                futures.append(await producer.send(topic, value, key=event_key))
        metadata = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in metadata]
    finally:
        await producer.stop()


@dataclass
class DeadLetter:
    """One record read back from the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]


async def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 10.0) -> list[DeadLetter]:
    """Read a topic from the beginning (no group); stop at `expect` records or when it stays quiet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for record in messages:
                    headers = {key: value.decode() for key, value in record.headers}
                    records.append(DeadLetter(record.key, record.value, headers))
                    quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > 1.0:
                break
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer.topics()
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions")


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset per partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        return {tp.partition: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


def gateway_config(
    bootstrap: str,
    topic: str,
    destinations: list[dict[str, Any]],
    *,
    http_port: int = 0,
    grace: float = 10.0,
    commit_interval: float = 0.2,
) -> dict[str, Any]:
    """A configuration tree for tests."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_prefix": f"gw-{topic}",
            "dlq_topic": f"{topic}.dlq",
            "commit_interval": commit_interval,
            "lag_interval": 0.5,
            "session_timeout_ms": 6000,
        },
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "logging": {"level": "info", "format": "json"},
        "shutdown": {"grace_period": grace},
        "destinations": destinations,
    }


def unibo_destination(url: str, name: str = "unibo", key: str = "test-unibo-key", **extra: Any) -> dict[str, Any]:
    """A Unibo destination pointing at a sandbox, with fast retries so tests stay short."""
    destination: dict[str, Any] = {
        "name": name,
        "connector": "unibo",
        "base_url": url,
        "credentials": {"default": {"api_key": key}},
        "batch": {"max_events": 500, "linger_ms": 50},
        "retry": {"initial": 0.05, "max": 0.5, "retry_after_cap": 5.0, "halt_probe": 0.5},
        "timeout": 2.0,
    }
    destination.update(extra)
    return destination


@dataclass
class InProcessGateway:
    """A gateway running as a task in the test's event loop."""

    gateway: Gateway
    task: asyncio.Task[None]

    def value(self, name: str, **labels: str) -> float:
        """A metric sample (0 when absent)."""
        return self.gateway.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def running_gateway(tree: dict[str, Any], destinations: Iterable[str] = ()) -> AsyncIterator[InProcessGateway]:
    """Run the gateway in process until the block ends, then stop it gracefully and wait for the drain."""
    resolved = binding.parse(tree, env={})
    gateway = Gateway(resolved, list(destinations))
    task = asyncio.create_task(gateway.run(install_signals=False))
    running = InProcessGateway(gateway, task)
    try:
        await wait_for(
            lambda: task.done() or (bool(gateway.pipelines) and all(p.joined for p in gateway.pipelines)),
            30,
            "the gateway to join its groups",
        )
        if task.done():
            task.result()
        yield running
    finally:
        gateway.stop()
        await asyncio.wait_for(task, 60)


@contextlib.asynccontextmanager
async def loop_turns_at_polls() -> AsyncIterator[dict[int, list[int]]]:
    """While the block runs, a task counts the event loop's turns, and every AIOKafkaConsumer's polls that return
    records note the count: per consumer, the turn count at each such poll. Two equal counts in a row are two polls
    with no turn of the loop between them (getmany returns prefetched records without suspending)."""
    turns = 0
    polls: dict[int, list[int]] = {}
    getmany = AIOKafkaConsumer.getmany

    async def counted(self: AIOKafkaConsumer, *partitions: Any, **options: Any) -> Any:
        batches = await getmany(self, *partitions, **options)
        if batches:
            polls.setdefault(id(self), []).append(turns)
        return batches

    async def probe() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    probing = asyncio.create_task(probe())  # turning before anything is read
    AIOKafkaConsumer.getmany = counted
    try:
        yield polls
    finally:
        AIOKafkaConsumer.getmany = getmany
        probing.cancel()


def polls_without_a_turn(polls: dict[int, list[int]]) -> tuple[int, list[int]]:
    """The one consumer's polls that returned records, and the indexes of those that came with no turn of the loop
    since the one before."""
    (seen,) = polls.values()
    return len(seen), [i for i in range(1, len(seen)) if seen[i] == seen[i - 1]]


@dataclass
class GatewayProcess:
    """`gateway run` as a real OS process, so tests can SIGKILL and SIGTERM it."""

    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)  # more `gateway run` options, e.g. ["--workers", "2"]

    def start(self) -> None:
        """Start a new process; each run logs to its own file."""
        log_file = self.log_path.with_suffix(f".{len(self.logs)}.log")
        self.logs.append(log_file)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_file.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path), *self.arguments],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the running process."""
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """Wait for exit without blocking the event loop (in-process sandboxes must keep answering)."""
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, timeout)

    def stop(self) -> None:
        """Kill whatever is still running (test cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        """Everything every run logged."""
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())


def write_config(path: Path, tree: dict[str, Any]) -> Path:
    """Write a configuration tree as YAML."""
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON log lines, skipping anything else."""
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(line)
            if isinstance(parsed, dict):
                lines.append(parsed)
    return lines


async def http_get(url: str) -> tuple[int, str]:
    """GET a URL; (status, body), or (0, "") when nothing answers."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """A sample's value from Prometheus text exposition, or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
