"""Plumbing the pipeline benchmarks share: a sandbox in its own process, topics, producing, gateway runs, figures."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import aiohttp
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devkit.testbed.ports import free_port
from devkit.testbed.stats import percentile
from devkit.testbed.traffic import Traffic, message
from gateway import binding
from gateway.app import Gateway

ROOT = Path(__file__).resolve().parents[1]

if TYPE_CHECKING:
    from aiohttp import web

    from devkit.sandbox.unibo.sandbox import UniboSandbox
    from devkit.testbed.broker import EmbeddedBroker

PARTITIONS = 6
Message = tuple[bytes | None, bytes]


class BenchSandbox(Protocol):
    """What the sandbox process needs of a vendor sandbox: its app, and a reset between runs."""

    def app(self) -> web.Application: ...

    def reset(self) -> None: ...


SandboxT = TypeVar("SandboxT", bound=BenchSandbox)

UNIBO_KEY = "bench-unibo-key"


def unibo_sandbox() -> UniboSandbox:
    """The Unibo sandbox taking UNIBO_KEY for brand default, built in the sandbox process."""
    from devkit.sandbox.unibo.sandbox import UniboSandbox  # noqa: PLC0415 - child process only

    return UniboSandbox({UNIBO_KEY: "default"})


def unibo_answer(sandbox: UniboSandbox, request: str) -> Any:
    """'count': unique ids stored; 'received': unique_id -> receive time."""
    if request == "count":
        return sandbox.total_unique
    return dict(sandbox.tenant("default").received)


def unibo_destination(url: str) -> dict[str, Any]:
    """A Unibo destination at `url` with UNIBO_KEY for every event of brand default."""
    return {"name": "unibo", "connector": "unibo", "base_url": url, "credentials": {"default": {"api_key": UNIBO_KEY}}}


def _serve_sandbox(
    port: int, conn: Connection, build: Callable[[], SandboxT], answer: Callable[[SandboxT, str], Any]
) -> None:
    """Serve `build()` in this (child) process; 'reset' resets it, 'stop' ends, other requests go to `answer`."""
    from devkit.sandbox.server import SandboxServer  # noqa: PLC0415 - child process only

    async def main() -> None:
        sandbox = build()
        async with SandboxServer(sandbox.app(), "127.0.0.1", port):
            conn.send("ready")
            loop = asyncio.get_running_loop()
            while True:
                request = await loop.run_in_executor(None, conn.recv)
                if request == "stop":
                    return
                if request == "reset":
                    sandbox.reset()
                    conn.send("ok")
                else:
                    conn.send(answer(sandbox, request))

    asyncio.run(main())


class SandboxProcess:
    """A vendor sandbox in a child process, so its CPU does not count against the gateway's event loop.

    `build` (a module-level function, run in the child) makes the sandbox; `answer(sandbox, request)` answers `ask`.
    """

    def __init__(self, build: Callable[[], SandboxT], answer: Callable[[SandboxT, str], Any]) -> None:
        self.port = free_port()
        self._conn, child = mp.Pipe()
        self._process = mp.get_context("spawn").Process(
            target=_serve_sandbox, args=(self.port, child, build, answer), daemon=True
        )
        self._process.start()
        assert self._conn.recv() == "ready"
        self._lock = asyncio.Lock()

    async def ask(self, request: str) -> Any:
        """Send `request` to the sandbox process and return its answer."""
        async with self._lock:
            self._conn.send(request)
            return await asyncio.to_thread(self._conn.recv)

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the sandbox process has used so far."""
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    async def wait_for_count(self, count: int, poll: float = 0.1) -> None:
        """Poll the sandbox's 'count' answer until it reaches `count`."""
        while await self.ask("count") < count:
            await asyncio.sleep(poll)

    def stop(self) -> None:
        """Stop the sandbox process."""
        self._conn.send("stop")
        self._process.join(5)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The sandbox's base URL."""
        return f"http://127.0.0.1:{self.port}"


SANDBOX_KEYS = {"unibo": "sandbox-unibo-key", "enable3": "sandbox-enable3-key", "userwise": "sandbox-userwise-key"}
"""The keys `gateway sandbox` accepts by default (UserWise's secret is `sandbox-userwise-secret`)."""


def spawn_sandboxes() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`gateway sandbox` (Unibo, Enable3, UserWise) in its own process, and the sandboxes' base URLs by vendor."""
    ports = {vendor: free_port() for vendor in SANDBOX_KEYS}
    command = [sys.executable, "-m", "gateway", "sandbox", *[f"--{v}-port={p}" for v, p in ports.items()]]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, {vendor: f"http://127.0.0.1:{port}" for vendor, port in ports.items()}


async def wait_for_sandboxes(urls: Mapping[str, str]) -> None:
    """Return once every sandbox answers its control endpoint."""
    async with aiohttp.ClientSession() as session:
        for url in urls.values():
            for _ in range(400):
                try:
                    async with session.get(f"{url}/_sandbox/faults") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"the sandbox at {url} did not come up")


class _Sampler:
    """A task that samples something of this process while the `async with` block runs."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()


class RssSampler(_Sampler):
    """Samples this process's resident memory every 100 ms while entered; `baseline` is taken on creation."""

    def __init__(self) -> None:
        super().__init__()
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            await asyncio.sleep(0.1)

    def summary(self) -> str:
        """The figure line: baseline and peak RSS in MiB."""
        return f"gateway process RSS: baseline {self.baseline / 2**20:.0f} MiB, peak {self.peak / 2**20:.0f} MiB"


class LoopStalls(_Sampler):
    """While entered, how late a 1 ms sleep on this process's event loop wakes: the longest stretch one task held the
    loop, which every other task (the other destinations' sends, the HTTP listener's probes and feeds) waited out."""

    TICK = 0.001

    def __init__(self) -> None:
        super().__init__()
        self.late: list[float] = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK)
            self.late.append(loop.time() - before - self.TICK)

    def summary(self) -> str:
        """The figure line: the loop's longest stalls in ms."""
        late = sorted(self.late) or [0.0]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        return f"event loop stalls: p99 {p99 * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms over {len(late):,} ticks"


def messages(count: int, prefix: str, takes: Callable[[dict[str, Any]], bool]) -> list[Message]:
    """`count` Kafka messages of realistic traffic (seed 99, 20k players) that the vendor `takes`."""
    traffic = Traffic(seed=99, players=20_000, prefix=prefix)
    out: list[Message] = []
    while len(out) < count:
        event = traffic.event()
        if takes(event):
            out.append(message(event))
    return out


async def create_topics(broker: EmbeddedBroker, topic: str) -> None:
    """`topic` with the benchmark's partitions, and its one-partition DLQ."""
    await broker.create_topic(topic, PARTITIONS, exist_ok=True)
    await broker.create_topic(f"{topic}.dlq", 1, exist_ok=True)


async def produce(bootstrap: str, topic: str, batch: Sequence[Message]) -> None:
    """Produce `batch` as fast as the broker takes it (a backlog)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in batch:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def produce_at_rate(
    bootstrap: str, topic: str, batch: Sequence[Message], rate: float, step: int, linger_ms: int
) -> dict[str, float]:
    """Produce `batch` at `rate` events/s in slices of `step`; returns event_id -> time.time() it was sent."""
    ids = [orjson.loads(value)["event_id"] for _, value in batch]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    await producer.start()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for index in range(0, len(batch), step):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for key, value in batch[index : index + step]:
            await producer.send(topic, value, key=key)
        now = time.time()
        for event_id in ids[index : index + step]:
            sent_at[event_id] = now
    await producer.flush()
    await producer.stop()
    return sent_at


def in_child(target: Any, *args: Any) -> None:
    """Run `target` in a fresh process so its memory and CPU are not the gateway's."""
    process = mp.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {process.exitcode}")


def gateway_tree(
    bootstrap: str, topic: str, destination: Mapping[str, Any], group_prefix: str = "bench"
) -> dict[str, Any]:
    """A gateway configuration tree reading `topic` into the one `destination`."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "group_prefix": group_prefix,
            "session_timeout_ms": 6000,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": "warning", "format": "json"},
        "destinations": [dict(destination)],
    }


@asynccontextmanager
async def running_gateway(tree: dict[str, Any]) -> AsyncIterator[Gateway]:
    """The gateway of `tree`, in this process, once every pipeline has joined its group; stopped on exit."""
    gateway = Gateway(binding.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    try:
        while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
            await asyncio.sleep(0.05)
        yield gateway
    finally:
        gateway.stop()
        await task


async def committed_total(tree: dict[str, Any]) -> int:
    """Offsets the destination of `tree` has committed, summed over the topic's partitions."""
    kafka, name = tree["kafka"], tree["destinations"][0]["name"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka["bootstrap_servers"],
        group_id=f"{kafka['group_prefix']}.{name}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        topic = kafka["topics"][0]
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


async def drain(
    sandbox: SandboxProcess, tree: dict[str, Any], delivered: int, committed: int, poll: float
) -> tuple[float, float]:
    """Seconds from now until the sandbox counts `delivered`, and until `committed` offsets are committed."""
    started = time.perf_counter()
    await sandbox.wait_for_count(delivered, poll)
    delivered_at = time.perf_counter()
    while await committed_total(tree) < committed:
        await asyncio.sleep(0.05)
    return delivered_at - started, time.perf_counter() - started


def latencies(
    sent_at: Mapping[str, float], received: Mapping[str, float], ids: Iterable[str] | None = None
) -> list[float]:
    """Receive minus send time of each id (all sent ids, or `ids`) that the vendor received."""
    return [received[i] - sent_at[i] for i in (sent_at if ids is None else ids) if i in received]


def latency_summary(values: Sequence[float], *, with_max: bool = True) -> str:
    """`p50 N ms, p99 N ms[, max N ms]`."""
    line = f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms"
    return line + (f", max {max(values) * 1000:.0f} ms" if with_max else "")


# ---- a `gateway run` process -------------------------------------------------------------------------------------


def process_cpu_seconds(root: psutil.Process) -> float:
    """User plus system CPU of a process and its live children."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclasses.dataclass
class ProcessRun:
    """One `gateway run --workers N` process over a backlog: when it started, first delivered and finished (every
    event delivered and committed), its CPU seconds (supervisor plus workers) to the first delivery and in all."""

    workers: int
    count: int
    started: float
    first: float
    done: float
    startup_cpu: float
    cpu: float
    exit_code: int | None

    @property
    def rate(self) -> float:
        """Events/s from the first delivery to the last commit (start-up and group joins left out)."""
        return self.count / (self.done - self.first)

    @property
    def rate_from_start(self) -> float:
        """Events/s from the process start."""
        return self.count / (self.done - self.started)


async def run_gateway_process(
    sandbox: SandboxProcess, tree: dict[str, Any], workers: int, count: int, config: Path
) -> ProcessRun:
    """Run `gateway run --config CONFIG --workers N` (CONFIG written from `tree`) until the sandbox, asked 'count',
    holds `count` events and the destination committed them all; then SIGTERM it."""
    import yaml  # noqa: PLC0415 - only the process benchmarks write a file

    await asyncio.to_thread(config.write_text, yaml.safe_dump(tree))
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--config", str(config), "--workers", str(workers)
    )
    gateway = psutil.Process(process.pid)
    cpu = 0.0
    try:
        while await sandbox.ask("count") == 0:
            await asyncio.sleep(0.05)
        first = time.perf_counter()
        startup_cpu = process_cpu_seconds(gateway)  # imports, config, group joins: paid once per process
        while await sandbox.ask("count") < count or await committed_total(tree) < count:
            cpu = max(cpu, process_cpu_seconds(gateway))  # sampled while the workers live
            await asyncio.sleep(0.2)
        done = time.perf_counter()
        cpu = max(cpu, process_cpu_seconds(gateway))
    finally:
        process.terminate()
        code = await asyncio.wait_for(process.wait(), 60)
    return ProcessRun(workers, count, started, first, done, startup_cpu, cpu, code)
