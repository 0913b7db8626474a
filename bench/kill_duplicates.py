"""Duplicates per kill -9: the Unibo pipeline killed mid-stream under a fault mix, before and after commit metadata.

`before` is how the gateway committed until commit metadata: the plain watermark every second (commit_after_settle 0,
commit_metadata_max_bytes 0). `after` is the default: commits 0.2 s after settles, naming the settled offsets above
the watermark. The broker is Tansu behind the test bed's relay that keeps commit metadata, as Kafka does.

    .venv/bin/python bench/kill_duplicates.py --events 12000 --kills 3

Prints, per mode, the events, the duplicates the sandbox received (it drops them by unique_id), and per kill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, message, unibo_takes

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-unibo-key"
FAULT_MIX = (  # one in five requests slow, a few 503s, 429s and connection resets: lanes progress unevenly
    FaultPlan(kind="slow", delay=0.5, fraction=0.2),
    FaultPlan(kind="status", status=503, fraction=0.05),
    FaultPlan(kind="rate_limit", retry_after=1, fraction=0.03),
    FaultPlan(kind="reset", fraction=0.02),
)
MODES = {
    "before": {"commit_interval": 1.0, "commit_after_settle": 0, "commit_metadata_max_bytes": 0},
    "after": {"commit_interval": 1.0},
}


def _config(path: Path, bootstrap: str, topic: str, url: str, kafka: dict[str, Any], port: int) -> Path:
    tree = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_prefix": f"bench-{topic}",
            "dlq_topic": f"{topic}.dlq",
            "session_timeout_ms": 6000,
            **kafka,
        },
        "http": {"listen": f"127.0.0.1:{port}"},
        "logging": {"level": "warning", "format": "json"},
        "destinations": [
            {
                "name": "unibo",
                "connector": "unibo",
                "base_url": url,
                "credentials": {"default": {"api_key": KEY}},
                "batch": {"max_events": 300, "linger_ms": 100},
                "retry": {"initial": 0.05, "max": 0.5, "retry_after_cap": 2.0, "halt_probe": 0.5},
                "timeout": 2.0,
            }
        ],
    }
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


async def _produce(broker: EmbeddedBroker, topic: str, events: list[dict[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - keeps the import next to its only use

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(events), 500):
            for event in events[start : start + 500]:
                key, value = message(event)
                await producer.send(topic, value, key=key)
            await producer.flush()
            await asyncio.sleep(0.4)
    finally:
        await producer.stop()


async def _run(mode: str, events_count: int, kills: int, work: Path) -> tuple[int, int, list[int], list[int]]:
    """One mode: events, duplicates, duplicates after each kill, in flight at each kill."""
    topic = f"kill-{mode}-{int(time.time())}"
    events = [e for e in Traffic(seed=21, players=500, prefix=f"k{mode}").stream(events_count) if unibo_takes(e)]
    sandbox = UniboSandbox({KEY: "default"}, fault_seed=7)
    for plan in FAULT_MIX:
        sandbox.faults.add(plan)
    with EmbeddedBroker(keep_commit_metadata=True) as broker:
        await broker.create_topic(topic, partitions=3)
        await broker.create_topic(f"{topic}.dlq", partitions=1)
        async with SandboxServer(sandbox.app()) as server:
            port = free_port()
            config = _config(work / f"{mode}.yaml", broker.bootstrap_servers, topic, server.url, MODES[mode], port)
            in_flight: list[int] = []  # the gateway's in-flight count (queued and being sent) just before each kill
            producer = asyncio.create_task(_produce(broker, topic, events))
            marks: list[int] = []  # the sandbox's duplicate count at each kill
            process: subprocess.Popen[bytes] | None = None
            try:
                for _ in range(kills):
                    process = _start(config, work / f"{mode}.log")
                    seen = sandbox.total_unique
                    await _until(lambda seen=seen: sandbox.total_unique > seen + 1000, 90)
                    await asyncio.sleep(0.5)
                    in_flight.append(await _in_flight(port))
                    marks.append(sandbox.tenant("default").duplicates)
                    process.send_signal(signal.SIGKILL)
                    await asyncio.to_thread(process.wait, 10)
                await producer
                process = _start(config, work / f"{mode}.log")
                await _until(lambda: sandbox.total_unique >= len(events), 180)
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 30)
            finally:
                producer.cancel()
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
    missing = {e["event_id"] for e in events} - set(sandbox.unique_ids("default"))
    if missing:
        raise SystemExit(f"{mode}: {len(missing)} events missing")
    total = sandbox.tenant("default").duplicates
    per_kill = [later - earlier for earlier, later in zip(marks, [*marks[1:], total], strict=True)]
    return len(events), total, per_kill, in_flight


async def _in_flight(port: int) -> int:
    """gateway_in_flight_events from the gateway's /metrics."""
    import aiohttp  # noqa: PLC0415 - keeps the import next to its only use
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_in_flight_events":
                return int(sample.value)
    return 0


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)], stdout=sink, stderr=sink, cwd=ROOT
        )


async def _until(predicate: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.1)


async def main() -> None:
    """Run the modes asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=12000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--mode", choices=["before", "after", "both"], default="both")
    parser.add_argument("--metadata-bytes", type=int, default=None, help="commit_metadata_max_bytes for `after`")
    args = parser.parse_args()
    if args.metadata_bytes is not None:
        MODES["after"]["commit_metadata_max_bytes"] = args.metadata_bytes
    modes = ["before", "after"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="kill-bench-") as work:
        for mode in modes:
            events, duplicates, per_kill, in_flight = await _run(mode, args.events, args.kills, Path(work))
            print(
                f"{mode:6}  {events} events, {args.kills} kills: {duplicates} duplicates, "
                f"{duplicates / args.kills:.0f} per kill (each: {per_kill}; in flight at each kill: {in_flight})"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
