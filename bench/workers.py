"""Benchmark: `gateway run --workers N` against one process, on the same Unibo backlog, broker and sandbox.

Each run is a real `gateway run` process (with its workers) in a consumer group of its own, reading the whole backlog
from the start into the Unibo sandbox (its own process), until every event is delivered and every offset committed.
Prints, per worker count: events/s from the first delivery and from the process start (start-up, group joins and the
workers' rebalance included), and the CPU seconds of the gateway's processes (supervisor plus workers): up to the first
delivery (start-up, paid once per process), then per event; and the Unibo sandbox's CPU seconds over the run, as the
vendor's stand-in shares the machine. The machine is
shared (the broker and the sandbox run on it too, and other jobs may): read the CPU seconds beside the rates.
Run: .venv/bin/python bench/workers.py [--events 1000000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from harness import (
    PARTITIONS,
    SandboxProcess,
    create_topics,
    gateway_tree,
    in_child,
    messages,
    produce,
    run_gateway_process,
    unibo_answer,
    unibo_destination,
    unibo_sandbox,
)

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import unibo_takes

TOPIC = "bench-workers"


def _produce_backlog(bootstrap: str, count: int) -> None:
    asyncio.run(produce(bootstrap, TOPIC, messages(count, "wk", unibo_takes)))


async def run(broker: EmbeddedBroker, sandbox: SandboxProcess, workers: int, count: int, directory: Path) -> None:
    """One timed run of `gateway run --workers N` over the whole backlog."""
    await sandbox.ask("reset")
    tree = gateway_tree(
        broker.bootstrap_servers,
        TOPIC,
        unibo_destination(sandbox.url),
        group_prefix=f"bench-w{workers}-{time.time_ns()}",
    )
    sandbox_before = sandbox.cpu_seconds()
    result = await run_gateway_process(sandbox, tree, workers, count, directory / f"workers-{workers}.yaml")
    sandbox_cpu = sandbox.cpu_seconds() - sandbox_before
    print(
        f"--workers {workers}: {result.rate:,.0f} events/s from the first delivery "
        f"({result.done - result.first:.1f} s), {result.rate_from_start:,.0f} events/s from the process start "
        f"({result.done - result.started:.1f} s); gateway CPU {result.cpu:.1f} s: {result.startup_cpu:.1f} s to the "
        f"first delivery, then {(result.cpu - result.startup_cpu) / count * 1e6:.1f} us/event; the Unibo sandbox's CPU "
        f"{sandbox_cpu:.1f} s ({sandbox_cpu / count * 1e6:.1f} us/event); exit {result.exit_code}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with SandboxProcess(unibo_sandbox, unibo_answer) as sandbox, tempfile.TemporaryDirectory() as directory:
        async with EmbeddedBroker() as broker:
            await create_topics(broker, TOPIC)
            print(f"producing a backlog of {args.events} Unibo events over {PARTITIONS} partitions ...", flush=True)
            await asyncio.to_thread(in_child, _produce_backlog, broker.bootstrap_servers, args.events)
            print(f"cores: {os.cpu_count()}, load average before the runs: {os.getloadavg()[0]:.1f}", flush=True)
            for workers in args.workers:
                await run(broker, sandbox, workers, args.events, Path(directory))


if __name__ == "__main__":
    asyncio.run(main())
