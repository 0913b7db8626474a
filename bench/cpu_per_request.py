"""Benchmark: the gateway's CPU time per vendor request, per destination alone and all three in one gateway.

One backlog of the standard traffic mix (seed 5) is produced once; each run reads it from the start with its own
consumer groups, against fault-free sandboxes (`gateway sandbox`, in another process). A run's CPU is this process's
CPU time (user + system, the gateway runs in it) from the first destination's partition assignment (before it
fetches anything) until every destination has committed the whole backlog; its requests are the gateway's own
`gateway_http_requests_total`. Prints per run: CPU seconds, requests, CPU µs per request, and the sharing ratio (all
three / the three single runs added up). Then the floor: a bare aiohttp client posting to a local aiohttp server in
another process, CPU µs per request (also with uvloop when it is installed).
With --instructions each run's gateway instead runs in a child process under valgrind's callgrind, and its
instructions over the same span are counted (as bench/instructions.py counts its stages): unlike CPU time on a
shared machine, the counts do not move with the load, so the sharing ratio is read from them. The
broker and the sandboxes stay outside callgrind. About 10 minutes for 30,000 events. The end of a run is read from
the pipelines' acknowledged commits, so the bench puts no Kafka requests of its own into the measured span.
With --rate the events are not a backlog: each run gets an empty topic, and another process produces the events at
that rate once the gateway has joined (live traffic, destinations reading in step); the three-destination line also
prints the share of decodes the shared decode cache served.
With --rounds N, every selected run and the floor are measured N times over, one round after another, so that the
machine's drift (up to 1.7x within an hour here) falls on all of them alike; after the rounds it prints, per
vendor, the median CPU per request and the median of its ratio to the floor measured in the same round, and the
median sharing ratio.
Run: .venv/bin/python bench/cpu_per_request.py [--events 60000] [--players 1000] [--runs 1] [--floor-requests 30000]
     [--instructions | --rate 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    PARTITIONS,
    SANDBOX_KEYS,
    create_topics,
    in_child,
    produce,
    produce_at_rate,
    spawn_sandboxes,
    wait_for_sandboxes,
)
from instructions import _totals

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, message
from gateway import app as gateway_module
from gateway import binding as config_module
from gateway import event_loop
from gateway.app import Gateway
from gateway.logs import configure
from gateway.pipeline import Pipeline

RUNS: tuple[tuple[str, ...], ...] = (("enable3",), ("userwise",), ("unibo",), ("unibo", "enable3", "userwise"))
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - the log lines' sink, for the process's life
LEVEL = "info"  # the production default: per-request and per-batch log lines cost what they cost in production


class CollectorTime:
    """With --collector: the garbage collector's CPU time over each run's span, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.installed = False  # --collector given
        self.active = False  # inside a run's span
        self.spent: dict[int, float] = {}
        self.runs: dict[int, int] = {}
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)
        self.installed = True

    def start(self) -> None:
        self.spent, self.runs, self.active = {}, {}, True

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._started = time.process_time()
            return
        generation = info["generation"]
        self.spent[generation] = self.spent.get(generation, 0.0) + time.process_time() - self._started
        self.runs[generation] = self.runs.get(generation, 0) + 1

    def summary(self) -> str:
        self.active = False
        total = sum(self.spent.values()) * 1000
        parts = ", ".join(f"gen{g} {self.runs[g]} x {self.spent[g] * 1000:.0f} ms" for g in sorted(self.spent))
        return f"  collector {total:.0f} ms over the span ({parts or 'no collections'})"


COLLECTOR = CollectorTime()
NO_DECODE_CACHE = False
"""With --no-decode-cache: the gateways of the runs share no decode cache (to compare)."""


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _destination(vendor: str, url: str) -> dict[str, Any]:
    credentials: dict[str, Any] = {"api_key": SANDBOX_KEYS[vendor]}
    if vendor == "userwise":
        credentials["secret_key"] = "sandbox-userwise-secret"
    return {"name": vendor, "connector": vendor, "base_url": url, "credentials": {"default": credentials}}


def _tree(bootstrap: str, topic: str, group_prefix: str, vendors: Sequence[str], urls: dict[str, str]) -> Any:
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "group_prefix": group_prefix,
            "session_timeout_ms": 6000,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": LEVEL, "format": "json"},
        "destinations": [_destination(vendor, urls[vendor]) for vendor in vendors],
    }


def _requests(gateway: Gateway, vendor: str) -> int:
    return int(
        sum(
            sample.value
            for metric in gateway.registry.collect()
            if metric.name == "gateway_http_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("destination") == vendor
        )
    )


async def run(
    bootstrap: str,
    topic: str,
    count: int,
    vendors: Sequence[str],
    urls: dict[str, str],
    label: str,
    *,
    marks: bool = False,
    live: tuple[int, float] | None = None,
) -> Any:
    """(CPU seconds, requests by vendor, wall seconds, shared decodes) of one gateway draining the backlog to
    `vendors`; with `marks`, the callgrind marker is called where the CPU time is read. With `live` (players,
    events/s), `topic` is empty and the traffic is produced at that rate by another process once the gateway has
    joined, so the destinations read at the head of the log, as in production."""
    prefix = f"bench-cpu-{label}-{time.time_ns()}"
    tree = _tree(bootstrap, topic, prefix, vendors, urls)
    gateway = Gateway(config_module.parse(tree, env={}))
    if NO_DECODE_CACHE:
        vars(gateway_module)["DecodeCache"] = lambda: None  # the gateway makes its cache in run(): none then
    producing: asyncio.Future[None] | None = None
    with _span_from_first_assignment(marks) as begun:
        task = asyncio.create_task(gateway.run(install_signals=False))
        try:
            # `joined` is set as `on_assigned` starts and `begun` as it ends: wait for both.
            while not (begun and gateway.pipelines and all(p.joined for p in gateway.pipelines)):
                await asyncio.sleep(0.05)
            cpu, wall = begun[0]
            if live is not None:
                producing = asyncio.ensure_future(
                    asyncio.to_thread(in_child, _produce_live, bootstrap, topic, count, live[0], live[1])
                )
            # The end is read from the pipelines' own record of what the broker acknowledged: asking the broker from
            # this process would add the bench's requests to the gateway's CPU, once per destination and every poll:
            # under callgrind (50x slower) about 1.4% of a single run, and more of the three-destination one.
            while not all(_committed(pipeline) >= count for pipeline in gateway.pipelines):
                await asyncio.sleep(0.2)
            cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
            COLLECTOR.active = False
            if marks:
                mark()
            if producing is not None:
                await producing
            for vendor in vendors:  # and the broker agrees, asked outside the measured span
                await _check_committed(bootstrap, f"{prefix}.{vendor}", topic, count)
            requests = {vendor: _requests(gateway, vendor) for vendor in vendors}
            decodes = gateway.decodes
            shared = (decodes.hits, decodes.hits + decodes.misses) if decodes is not None else None
        finally:
            gateway.stop()
            await task
    return cpu, requests, wall, shared


@contextlib.contextmanager
def _span_from_first_assignment(marks: bool) -> Iterator[list[tuple[float, float]]]:
    """A list that receives (CPU seconds, wall clock) when the first pipeline has been assigned its partitions, before
    any of them fetches (aiokafka fetches nothing until `on_assigned` returns); with `marks`, callgrind's counters are
    dumped there too. Read once every pipeline has joined, later, the span would leave out what the first ones had
    consumed meanwhile: up to a quarter of a run's CPU when a loop full of deliveries woke the bench late."""
    begun: list[tuple[float, float]] = []
    original = Pipeline.on_assigned

    async def on_assigned(self: Pipeline, assigned: list[TopicPartition], consumer: Any = None) -> None:
        await original(self, assigned, consumer)
        if not begun:
            if marks:
                mark()
            begun.append((cpu_seconds(), time.perf_counter()))
            if COLLECTOR.installed:
                COLLECTOR.start()

    Pipeline.on_assigned = on_assigned  # type: ignore[method-assign]
    try:
        yield begun
    finally:
        Pipeline.on_assigned = original  # type: ignore[method-assign]


def _produce_live(bootstrap: str, topic: str, count: int, players: int, rate: float) -> None:
    """The standard mix (seed 5) produced at `rate` events/s, in a process of its own (its CPU is not counted)."""
    traffic = Traffic(seed=5, players=players, prefix=topic)
    batch = [message(event) for event in traffic.stream(count)]
    asyncio.run(produce_at_rate(bootstrap, topic, batch, rate, step=max(1, int(rate) // 100), linger_ms=5))


async def _check_committed(bootstrap: str, group: str, topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        await consumer.stop()
    if sum(offset or 0 for offset in offsets) < count:
        raise SystemExit(f"{group}: the broker holds commits short of the backlog: {offsets}")


def _committed(pipeline: Any) -> int:
    """The offsets `pipeline` has committed and the broker acknowledged, summed over its partitions."""
    return sum(tracker.committed or 0 for tracker in pipeline._partitions.values())


def mark() -> None:
    """Have callgrind dump its counters now. A gateway run itself calls the C functions bench/instructions.py marks
    with (zlib's crc32 and adler32), so the process asks callgrind through its control tool instead."""
    subprocess.run(["callgrind_control", "--dump", str(os.getpid())], check=True, capture_output=True)


def counted_run(
    bootstrap: str, topic: str, count: int, vendors: Sequence[str], urls: dict[str, str], label: str
) -> Any:
    """(instructions, requests by vendor, wall seconds) of `run` in a child process under callgrind. With
    CALLGRIND_KEEP set to a folder, the run's dumps are copied there (for callgrind_annotate)."""
    with tempfile.TemporaryDirectory() as directory:
        job = {
            "bootstrap": bootstrap,
            "topic": topic,
            "count": count,
            "vendors": list(vendors),
            "urls": urls,
            "no_decode_cache": NO_DECODE_CACHE,
        }
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={directory}/cg.%p",
            sys.executable,
            __file__,
            "--inside-run",
            json.dumps({**job, "label": label}),
        ]
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
        totals = _totals(Path(directory))
        keep = os.environ.get("CALLGRIND_KEEP")
        if keep:
            for dump in Path(directory).glob("cg.*"):
                shutil.copy(dump, Path(keep) / f"{label}.{dump.name}")
        if len(totals) != 2:
            raise SystemExit(f"expected 2 callgrind dumps, got {len(totals)}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return totals[1], result["requests"], result["wall"], result["shared"]


def _inside_run(job: str) -> None:
    """The child of `counted_run`: one gateway run, its requests and wall time printed as JSON."""
    global NO_DECODE_CACHE  # noqa: PLW0603 - the parent's switch, set once before the run
    spec = json.loads(job)
    NO_DECODE_CACHE = spec["no_decode_cache"]
    _, requests, wall, shared = event_loop.run(
        run(spec["bootstrap"], spec["topic"], spec["count"], spec["vendors"], spec["urls"], spec["label"], marks=True)
    )
    print(json.dumps({"requests": requests, "wall": wall, "shared": shared}))


# ---- the floor: a bare aiohttp client against a bare aiohttp server --------------------------------------------


def _serve(port: int, ready: Any) -> None:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/v1/event", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _post_many(url: str, requests: int, concurrency: int) -> float:
    """CPU µs per request of `requests` POSTs from `concurrency` workers over one pooled session."""
    body = b'{"event_id":"e-1","user_id":"p-1","type":"deposit","amount":12.5,"currency":"EUR"}'
    headers = {"X-API-KEY": "bench-key", "content-type": "application/json"}
    left = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()

        await asyncio.gather(*[worker() for _ in range(concurrency)])  # warm the pool
        left = requests
        cpu = cpu_seconds()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return (cpu_seconds() - cpu) / requests * 1e6


def floor(requests: int, concurrency: int) -> list[tuple[str, float]]:
    """CPU µs per request of a bare aiohttp client: with asyncio's loop, and uvloop's when installed."""
    port = free_port()
    ready = mp.get_context("spawn").Event()
    server = mp.get_context("spawn").Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(30)
    url = f"http://127.0.0.1:{port}/api/v1/event"
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415 - optional

        loops.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    results = []
    try:
        for name, new_loop in loops:
            with asyncio.Runner(loop_factory=new_loop) as runner:
                results.append((name, runner.run(_post_many(url, requests, concurrency))))
    finally:
        server.terminate()
        server.join(5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--players", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=1, help="repeat each run; the lowest CPU is printed")
    parser.add_argument("--only", nargs="+", choices=["enable3", "userwise", "unibo", "all", "floor"], default=None)
    parser.add_argument("--floor-requests", type=int, default=30_000)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument(
        "--rate", type=float, help="live traffic: produce the events at this rate while each gateway runs"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every selected run and the floor this many times, in turn"
    )
    parser.add_argument("--collector", action="store_true", help="print the garbage collector's time in each run")
    parser.add_argument("--no-decode-cache", action="store_true", help="the gateways share no decode cache")
    parser.add_argument("--inside-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure(level=LEVEL, fmt="json", stream=DEVNULL)
    global NO_DECODE_CACHE  # noqa: PLW0603 - a bench switch, set once before the runs
    NO_DECODE_CACHE = args.no_decode_cache
    if args.collector:
        COLLECTOR.install()
    if args.inside_run:
        _inside_run(args.inside_run)
        return
    only = set(args.only or ["enable3", "userwise", "unibo", "all", "floor"])
    runs = [vendors for vendors in RUNS if (vendors[0] if len(vendors) == 1 else "all") in only]
    if args.rounds > 1 and args.instructions:
        parser.error("--rounds is for timed runs: instruction counts do not drift")
    floor_requests = args.floor_requests if "floor" in only else 0
    if runs:
        print(f"event loop: {event_loop.chosen()} (GATEWAY_EVENT_LOOP)")
        if args.rate and args.instructions:
            parser.error("--rate is timed: callgrind's gateway could not keep up with live traffic")
        rounds = event_loop.run(
            gateway_runs(
                runs,
                args.events,
                args.players,
                args.runs,
                counted=args.instructions,
                rate=args.rate,
                rounds=args.rounds,
                floor_requests=floor_requests,
            )
        )
        if args.rounds > 1:
            print(_medians(rounds))
    elif floor_requests:
        for _round in range(args.rounds):
            _print_floor(floor(floor_requests, concurrency=32), floor_requests)


def _print_floor(results: list[tuple[str, float]], requests: int) -> dict[str, float]:
    """Print the floor's lines; returns µs per request by event loop."""
    for name, micros in results:
        print(f"floor: bare aiohttp client ({name} loop), {requests:,} POSTs: {micros:.1f} µs CPU per request")
    return dict(results)


def _medians(rounds: list[dict[str, Any]]) -> str:
    """The summary of several rounds: per vendor the median µs per request and the median of its ratio to the floor
    of the same round (each event loop's), and the median sharing ratio."""
    lines = [f"medians of {len(rounds)} rounds:"]
    for label in rounds[0]["per_request"]:
        if any(label not in each["per_request"] for each in rounds):
            continue  # too few requests in some round to say
        micros = [each["per_request"][label] for each in rounds]
        line = f"  {label:10} {statistics.median(micros):6.1f} µs CPU per request ({min(micros):.1f}-{max(micros):.1f})"
        for loop in rounds[0]["floor"]:
            ratios = [each["per_request"][label] / each["floor"][loop] for each in rounds]
            line += f", {statistics.median(ratios):.2f}x the {loop} floor ({min(ratios):.2f}-{max(ratios):.2f})"
        lines.append(line)
    for loop in rounds[0]["floor"]:
        floors = [each["floor"][loop] for each in rounds]
        lines.append(f"  floor, {loop:7} {statistics.median(floors):6.1f} µs CPU per request")
    sharing = [each["sharing"] for each in rounds if each["sharing"] is not None]
    if sharing:
        lines.append(f"  sharing    {statistics.median(sharing):.2f} ({min(sharing):.2f}-{max(sharing):.2f})")
    return "\n".join(lines)


async def gateway_runs(
    runs: Sequence[tuple[str, ...]],
    events: int,
    players: int,
    repeat: int,
    *,
    counted: bool = False,
    rate: float | None = None,
    rounds: int = 1,
    floor_requests: int = 0,
) -> list[dict[str, Any]]:
    """Produce the backlog once (or with `rate`, live traffic for each run), then print each run's figures (CPU
    seconds, or with `counted` instructions), `rounds` times over, each round followed by the floor when
    `floor_requests`. Returns each round's figures: CPU µs per request by vendor, the floor by event loop, and the
    sharing ratio (or None)."""
    measured: list[dict[str, Any]] = []
    if runs:
        process, urls = spawn_sandboxes()
        try:
            await wait_for_sandboxes(urls)
            with EmbeddedBroker() as broker:
                topic = "bench-cpu"
                if rate:
                    print(f"live: {events} events over {players} players at {rate:,.0f}/s; CPU of the gateway process")
                else:
                    await create_topics(broker, topic)
                    traffic = Traffic(seed=5, players=players, prefix=topic)
                    await produce(broker.bootstrap_servers, topic, [message(e) for e in traffic.stream(events)])
                    print(f"backlog: {events} events over {players} players; CPU of the gateway process")
                for round_index in range(rounds):
                    if rounds > 1:
                        print(f"round {round_index + 1} of {rounds}:")
                    measured.append(
                        await _round(
                            broker,
                            topic,
                            events,
                            players,
                            repeat,
                            runs,
                            urls,
                            counted,
                            rate,
                            floor_requests,
                            round_index,
                        )
                    )
        finally:
            process.terminate()
            process.wait(timeout=10)
    return measured


async def _round(
    broker: EmbeddedBroker,
    topic: str,
    events: int,
    players: int,
    repeat: int,
    runs: Sequence[tuple[str, ...]],
    urls: dict[str, str],
    counted: bool,
    rate: float | None,
    floor_requests: int,
    round_index: int,
) -> dict[str, Any]:
    """One round: each of `runs` (the lowest of `repeat` attempts), then the floor when `floor_requests`."""
    singles: dict[str, float] = {}
    per_request: dict[str, float] = {}
    sharing: float | None = None
    for vendors in runs:
        label = vendors[0] if len(vendors) == 1 else "all three"
        results = []
        for attempt in range(repeat):
            if rate:  # a topic of its own per run, empty until the gateway has joined
                topic = f"bench-cpu-live-{label.replace(' ', '-')}-{round_index}-{attempt}"
                await create_topics(broker, topic)
            args = (broker.bootstrap_servers, topic, events, vendors, urls, label.replace(" ", "-"))
            if counted:
                results.append(await asyncio.to_thread(counted_run, *args))
            else:
                results.append(await run(*args, live=(players, rate) if rate else None))
        best = min(results, key=lambda result: result[0])
        print(_figures(label, vendors, best, singles, counted))
        if COLLECTOR.installed and not counted:  # a counted run's collector is in its child
            print(COLLECTOR.summary())
        total = sum(best[1].values())
        if len(vendors) == 1 and total >= 1000 and not counted:
            per_request[label] = best[0] / total * 1e6
        elif len(vendors) > 1 and len(singles) == 3:
            sharing = best[0] / sum(singles.values())
    floors = _print_floor(await asyncio.to_thread(floor, floor_requests, 32), floor_requests) if floor_requests else {}
    return {"per_request": per_request, "floor": floors, "sharing": sharing}


def _figures(label: str, vendors: Sequence[str], result: Any, singles: dict[str, float], counted: bool) -> str:
    """One run's line: its CPU (or instructions), requests, per request alone, and the sharing ratio for all three."""
    cpu, requests, wall, shared = result
    total = sum(requests.values())
    if counted:
        line = f"{label:10} instructions {cpu / 1e9:6.2f} G  requests {total:7,}"
    else:
        line = f"{label:10} CPU {cpu:6.2f} s  requests {total:7,}  wall {wall:6.2f} s"
    if len(vendors) == 1:
        singles[vendors[0]] = cpu
        if total >= 1000 and counted:
            line += f"  {cpu / total:9,.0f} instructions per request"
        elif total >= 1000:
            line += f"  {cpu / total * 1e6:6.1f} µs CPU per request"
        return line
    line += f"  ({', '.join(f'{v} {n:,}' for v, n in requests.items())})"
    if shared is not None:
        hits, lookups = shared
        line += f"  decodes shared: {hits / max(1, lookups):.0%} of {lookups:,}"
    if len(singles) == 3:
        line += f"  sharing: {cpu / sum(singles.values()):.2f} of the singles added up"
    return line


if __name__ == "__main__":
    main()
