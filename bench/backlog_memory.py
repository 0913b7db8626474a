"""Benchmark: RSS of a gateway process draining a large backlog on one Unibo destination (issue 10, point 3).

Produces the backlog first (default 5,000,000 events, from a child process), then starts `gateway run` as its own
process against the Unibo sandbox (another process) and samples the gateway's RSS every second until every offset is
committed. Prints the peak, the final RSS, the curve (flat or growing), the in-flight events and bytes it held (the
bounds), and events/s. `--halted-brand`: two brands, brand B's key refused (403) for the whole run, so B is parked.
`--then-accept`: once that run settled, B's key works and the parked events drain through B's parking reader; prints
that drain's rate, and the gateway's CPU seconds and RSS over it.
Run: .venv/bin/python bench/backlog_memory.py [--events 5000000] [--halted-brand [--then-accept]] [--slow-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import psutil
import yaml
from harness import SandboxProcess, committed_total, create_topics, gateway_tree, in_child, produce

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway.logs import configure

if TYPE_CHECKING:
    from devkit.sandbox.unibo.sandbox import UniboSandbox

KEY_A, KEY_B = "bench-key-casino-a", "bench-key-casino-b"
TOPIC = "bench-memory"
CHUNK = 50_000
ROOT = Path(__file__).resolve().parent.parent
SLOW_MS = int(os.environ.get("BENCH_SLOW_MS", "0"))  # read in the sandbox process (spawned: argv is not parsed there)


def _sandbox() -> UniboSandbox:
    """The Unibo sandbox, built in the sandbox process: only brand A's key is accepted (B's is refused, 403)."""
    from devkit.sandbox.faults import FaultPlan  # noqa: PLC0415 - child process only
    from devkit.sandbox.unibo.sandbox import UniboSandbox  # noqa: PLC0415

    sandbox = UniboSandbox({KEY_A: "casino-a"})
    if SLOW_MS:
        sandbox.faults.add(FaultPlan(kind="slow", delay=SLOW_MS / 1000))
    return sandbox


def _answer(sandbox: UniboSandbox, request: str) -> Any:
    """'count': unique ids stored; 'refused': requests refused on their key; 'accept': brand B's key works from now."""
    if request == "accept":
        sandbox.set_keys({KEY_A: "casino-a", KEY_B: "casino-b"})
        return True
    return sandbox.stats.auth_failures if request == "refused" else sandbox.total_unique


def _produce_backlog(bootstrap: str, count: int, brands: tuple[str, ...]) -> None:
    """Generate and produce `count` Unibo-bound events in chunks (the whole backlog is never held in memory)."""
    traffic = Traffic(seed=99, players=20_000, brands=brands, prefix="mem")

    async def run() -> None:
        left = count
        while left:
            chunk: list[tuple[bytes | None, bytes]] = []
            while len(chunk) < min(CHUNK, left):
                event = traffic.event()
                if unibo_takes(event):
                    chunk.append(message(event))
            await produce(bootstrap, TOPIC, chunk)
            left -= len(chunk)

    asyncio.run(run())


@dataclass
class Samples:
    """One sample a second: seconds since start, RSS (MiB), in-flight events and bytes, parked events."""

    at: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    in_flight: list[float] = field(default_factory=list)
    in_flight_bytes: list[float] = field(default_factory=list)
    parked: float = 0.0
    parking: float = 0.0  # brands parking now
    halted: float = 0.0  # brands halted now
    # (seconds, (consumed, delivered, parked, in flight)): with a brand halted for the whole run, the events it held
    # when it was parked never settle, so neither does every commit
    progress: list[tuple[float, tuple[float, float, float, float]]] = field(default_factory=list)

    def settled_down(self, events: int) -> float | None:
        """With a halted brand: when everything was consumed and delivered, parked or held, and nothing changed
        for three seconds since (seconds since start), else None."""
        recent = self.progress[-4:]
        if len(recent) < 4 or recent[0][1][0] < events or len({counts for _, counts in recent}) > 1:
            return None
        return recent[0][0]


def _metric(text: str, name: str) -> float:
    """Sum of every sample of `name` in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _sample(process: psutil.Process, port: int, samples: Samples, started: float) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            rss = process.memory_info().rss / 2**20
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(2)) as reply:
                    text = await reply.text()
                samples.in_flight.append(_metric(text, "gateway_in_flight_events"))
                samples.in_flight_bytes.append(_metric(text, "gateway_in_flight_bytes"))
                samples.parked = _metric(text, "gateway_parked_events_total")
                samples.parking = _metric(text, "gateway_brand_parking")
                samples.halted = _metric(text, "gateway_tenant_halted")
                consumed = _metric(text, "gateway_events_consumed_total")
                delivered = _metric(text, "gateway_events_delivered_total")
                counts = (consumed, delivered, samples.parked, samples.in_flight[-1])
                samples.progress.append((time.monotonic() - started, counts))
            except (aiohttp.ClientError, TimeoutError, IndexError, ValueError):
                pass
            samples.at.append(time.monotonic() - started)
            samples.rss.append(rss)
            await asyncio.sleep(1.0)


def _curve(samples: Samples) -> str:
    """Flat or growing: past the first 20% of the run (the start and the first fill), the mean RSS of the last
    quarter against that of the second quarter, and the least-squares slope over the same span."""
    rss, at = samples.rss, samples.at
    start = len(rss) // 5
    steady, times = rss[start:], at[start:]
    if len(steady) < 8:
        return "too short to tell"
    quarter = len(steady) // 4
    early, late = statistics.fmean(steady[quarter : 2 * quarter]), statistics.fmean(steady[-quarter:])
    slope = statistics.linear_regression(times, steady).slope * 60
    verdict = "flat" if late - early <= max(10.0, 0.05 * early) else "growing"
    points = ", ".join(f"{at[i]:.0f}s {rss[i]:.0f}" for i in range(0, len(rss), max(1, len(rss) // 10)))
    return (
        f"{verdict} (mean {early:.0f} MiB in the second quarter of the steady part, {late:.0f} MiB in the last; "
        f"slope {slope:+.1f} MiB/min)\n  RSS curve (MiB): {points}, end {rss[-1]:.0f}"
    )


def _layout(pid: int) -> str:
    """Where the process's resident memory is: the C heap (brk), anonymous mappings (pymalloc arenas, large buffers)
    and the rest (code, libraries)."""
    heap = anonymous = total = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=6)
            if "-" in first[0] and len(first) >= 5:
                name = first[5].strip() if len(first) > 5 else ""
            elif first[0] == "Rss:":
                kib = int(first[1])
                total += kib
                if name == "[heap]":
                    heap += kib
                elif not name:
                    anonymous += kib
    rest = total - heap - anonymous
    mib = [f"{kib / 1024:.0f}" for kib in (total, heap, anonymous, rest)]
    return f"RSS {mib[0]} MiB: C heap {mib[1]}, anonymous mappings {mib[2]}, other {mib[3]}"


def _tree(bootstrap: str, url: str, port: int, halted: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    credentials = (
        {"casino-a": {"api_key": KEY_A}, "casino-b": {"api_key": KEY_B}} if halted else {"default": {"api_key": KEY_A}}
    )
    destination = {"name": "unibo", "connector": "unibo", "base_url": url, "credentials": credentials, **overrides}
    tree = gateway_tree(bootstrap, TOPIC, destination)
    tree["http"]["listen"] = f"127.0.0.1:{port}"
    return tree


async def run(args: argparse.Namespace) -> None:
    """Backlog first, then the gateway process until every offset is committed; print the figures."""
    halted = args.halted_brand
    overrides: dict[str, Any] = {}
    if args.max_in_flight:
        overrides["max_in_flight"] = args.max_in_flight
    if args.max_in_flight_bytes:
        overrides["max_in_flight_bytes"] = args.max_in_flight_bytes
    async with EmbeddedBroker() as broker:
        await create_topics(broker, TOPIC)
        brands = ("casino-a", "casino-b") if halted else ("default",)
        print(f"producing a backlog of {args.events:,} Unibo events (child process) ...", flush=True)
        begun = time.monotonic()
        await asyncio.to_thread(in_child, _produce_backlog, broker.bootstrap_servers, args.events, brands)
        print(f"  produced in {time.monotonic() - begun:.0f} s", flush=True)
        os.environ["BENCH_SLOW_MS"] = str(args.slow_ms)
        with SandboxProcess(_sandbox, _answer) as sandbox, tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            tree = _tree(broker.bootstrap_servers, sandbox.url, port, halted, overrides)
            config = Path(tmp) / "gateway.yaml"
            config.write_text(yaml.safe_dump(tree, sort_keys=False))
            log_path = Path(args.log) if args.log else Path(tmp) / "gateway.log"
            gateway = _start_gateway(config, log_path)
            try:
                started = time.monotonic()
                samples = Samples()
                sampler = asyncio.create_task(_sample(psutil.Process(gateway.pid), port, samples, started))
                last, elapsed = 0.0, None
                while (committed := await committed_total(tree)) < args.events:
                    if halted and (elapsed := samples.settled_down(args.events)) is not None:
                        break
                    if gateway.poll() is not None:
                        raise RuntimeError(f"the gateway exited with {gateway.returncode}; see {log_path}")
                    now = time.monotonic() - started
                    if now - last >= 30:
                        last = now
                        rss = samples.rss[-1] if samples.rss else 0
                        print(f"  {now:.0f} s: {committed:,} committed, RSS {rss:.0f} MiB", flush=True)
                    await asyncio.sleep(2.0)
                if elapsed is None:
                    elapsed = time.monotonic() - started
                drain = await _drain(gateway, tree, sandbox, samples, args.events) if args.then_accept else None
                await asyncio.sleep(1.5)  # one more sample after the last commit
                sampler.cancel()
                layout = _layout(gateway.pid)
                delivered = await sandbox.ask("count")
                refused = await sandbox.ask("refused")
            finally:
                gateway.terminate()
                await asyncio.to_thread(gateway.wait, 30)
    mode = "one brand halted (403) for the whole run" if halted else "one brand"
    print(f"\nbacklog {args.events:,} events, Unibo destination, {mode}; bounds: {overrides or 'defaults'}")
    until = "everything delivered, parked or held (B's)" if halted else "every offset committed"
    print(f"events/s (gateway start to {until}): {args.events / elapsed:,.0f} ({elapsed:.0f} s)")
    print(f"delivered {delivered:,}, parked {samples.parked:,.0f}, requests refused on the key {refused:,}")
    if halted and samples.progress:
        held = samples.progress[-1][1][3]
        print(f"held in memory for B since it halted (unsettled until its key works, so commits wait): {held:,.0f}")
    print(
        f"gateway RSS: peak {max(samples.rss):.0f} MiB, final {samples.rss[-1]:.0f} MiB, "
        f"first sample {samples.rss[0]:.0f} MiB; {len(samples.rss)} samples"
    )
    print(f"curve: {_curve(samples)}")
    if drain is not None:
        probed, seconds, cpu, peak = drain
        print(
            f"B's key then accepted: its probe went through {probed:.1f} s later; then {samples.parked:,.0f} parked "
            f"events and B's held ones drained in {seconds:.1f} s ({samples.parked / seconds:,.0f} parked events/s); "
            f"gateway CPU {cpu:.1f} s and RSS peak {peak:.0f} MiB from the key's acceptance"
        )
    print(f"at the end (nothing in flight): {layout}")
    if samples.in_flight:
        print(
            f"held at most {max(samples.in_flight):,.0f} events in flight, "
            f"{max(samples.in_flight_bytes) / 2**20:.1f} MiB counted (gateway_in_flight_bytes)"
        )


async def _drain(
    gateway: subprocess.Popen[bytes], tree: dict[str, Any], sandbox: SandboxProcess, samples: Samples, events: int
) -> tuple[float, float, float, float]:
    """Accept B's key, then wait until every offset is committed and B delivers directly again: (seconds until B's
    probe got through, seconds of drain after it, gateway CPU seconds, RSS peak in MiB) over both."""
    process = psutil.Process(gateway.pid)
    cpu_before = sum(process.cpu_times()[:2])
    first_sample = len(samples.rss)
    begun = time.monotonic()
    await sandbox.ask("accept")
    while samples.halted > 0:  # until B's prober gets through (retry.halt_probe)
        await asyncio.sleep(0.1)
    probed = time.monotonic() - begun
    while await committed_total(tree) < events or samples.parking > 0:
        if gateway.poll() is not None:
            raise RuntimeError(f"the gateway exited with {gateway.returncode}")
        await asyncio.sleep(0.1)
    seconds = time.monotonic() - begun
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    return probed, seconds - probed, cpu, max(samples.rss[first_sample:] or samples.rss[-1:])


def _start_gateway(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`gateway run` as its own process, logging to `log_path`."""
    with log_path.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--halted-brand", action="store_true", help="two brands, brand B's key refused (403)")
    parser.add_argument("--then-accept", action="store_true", help="with --halted-brand: then B's key works")
    parser.add_argument("--slow-ms", type=int, default=0, help="the sandbox answers each request this much later")
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--max-in-flight-bytes", type=int, default=None)
    parser.add_argument("--log", default=None, help="keep the gateway's log in this file")
    args = parser.parse_args()
    configure("warning", "json")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
