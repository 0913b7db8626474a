"""Benchmark: Unibo, Enable3 and UserWise in one gateway, fault-free and then under the sandboxes' standard fault mix.

The fault mix (gateway.sandbox.faults.standard_fault_mix) on every vendor request: 3% 5xx, 2% 429 with
`Retry-After: 1`, 1% connection resets, 0.1% hangs (the gateway's request timeout ends them). The sandboxes run in
their own process (`gateway sandbox`); the destinations use their defaults. Each destination's completion time is
from the gateway joining its groups until that destination's group has committed every offset of the backlog.
Prints one line per destination: fault-free seconds, fault-mix seconds and their ratio (the target is <= 2x).
Run: .venv/bin/python bench/fault_mix.py [--events 15000] [--players 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import PARTITIONS, create_topics, produce

from gateway import config as config_module
from gateway.app import Gateway
from gateway.logs import configure
from gateway.sandbox.faults import standard_fault_mix
from gateway.testbed.broker import EmbeddedBroker
from gateway.testbed.ports import free_port
from gateway.testbed.traffic import Traffic, message

ROOT = Path(__file__).resolve().parents[1]
VENDORS = ("unibo", "enable3", "userwise")
KEYS = {"unibo": "sandbox-unibo-key", "enable3": "sandbox-enable3-key", "userwise": "sandbox-userwise-key"}


def _spawn_sandboxes() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ports = {vendor: free_port() for vendor in VENDORS}
    command = [sys.executable, "-m", "gateway", "sandbox", *[f"--{v}-port={p}" for v, p in ports.items()]]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, {vendor: f"http://127.0.0.1:{port}" for vendor, port in ports.items()}


async def _wait_for_sandboxes(urls: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for url in urls.values():
            for _ in range(200):
                try:
                    async with session.get(f"{url}/_sandbox/faults") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)


async def _faults(urls: dict[str, str], arm: bool) -> dict[str, Any]:
    """Arm the standard mix on every sandbox (or clear it); the injection report per vendor."""
    plans = orjson.dumps([asdict(plan) for plan in standard_fault_mix()])
    reports = {}
    async with aiohttp.ClientSession() as session:
        for vendor, url in urls.items():
            if arm:
                request = session.post(f"{url}/_sandbox/faults", data=plans)
            else:
                request = session.delete(f"{url}/_sandbox/faults")
            async with request as response:
                reports[vendor] = (await response.json())["injected"]
    return reports


OVERRIDES: dict[str, Any] = {}


def _tree(bootstrap: str, topic: str, urls: dict[str, str]) -> dict[str, Any]:
    credentials: dict[str, dict[str, Any]] = {
        "unibo": {"default": {"api_key": KEYS["unibo"]}},
        "enable3": {"default": {"api_key": KEYS["enable3"]}},
        "userwise": {"default": {"api_key": KEYS["userwise"], "secret_key": "sandbox-userwise-secret"}},
    }
    destinations = [
        {"name": vendor, "connector": vendor, "base_url": urls[vendor], "credentials": credentials[vendor], **OVERRIDES}
        for vendor in VENDORS
    ]
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "group_prefix": f"bench-{topic}",
            "session_timeout_ms": 6000,
            "commit_interval": 0.2,
        },
        "http": {"listen": "127.0.0.1:0"},
        "logging": {"level": "error", "format": "json"},
        "destinations": destinations,
    }


async def _committed(consumers: dict[str, AIOKafkaConsumer], topic: str) -> dict[str, int]:
    totals = {}
    for vendor, consumer in consumers.items():
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
        totals[vendor] = sum(offset or 0 for offset in offsets)
    return totals


async def run(bootstrap: str, topic: str, events: list[Any], urls: dict[str, str]) -> dict[str, float]:
    """Seconds until each destination has committed the whole backlog."""
    tree = _tree(bootstrap, topic, urls)
    consumers = {
        vendor: AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=f"bench-{topic}.{vendor}", enable_auto_commit=False
        )
        for vendor in VENDORS
    }
    for consumer in consumers.values():
        await consumer.start()
    gateway = Gateway(config_module.parse(tree, env={}))
    task = asyncio.create_task(gateway.run(install_signals=False))
    done: dict[str, float] = {}
    try:
        while not (gateway.pipelines and all(p.joined for p in gateway.pipelines)):
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        while len(done) < len(VENDORS):
            for vendor, total in (await _committed(consumers, topic)).items():
                if vendor not in done and total >= len(events):
                    done[vendor] = time.perf_counter() - started
            await asyncio.sleep(0.2)
    finally:
        gateway.stop()
        await task
        for consumer in consumers.values():
            await consumer.stop()
    return done


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--players", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=None, help="the destinations' request timeout (default 10)")
    parser.add_argument("--only", choices=["fault-free", "fault mix"], default=None, help="run one of the two")
    args = parser.parse_args()
    if args.timeout:
        OVERRIDES["timeout"] = args.timeout
    configure(level="error", fmt="json")
    process, urls = _spawn_sandboxes()
    try:
        await _wait_for_sandboxes(urls)
        with EmbeddedBroker() as broker:
            results = {}
            for label, arm in (("fault-free", False), ("fault mix", True)):
                if args.only is not None and label != args.only:
                    continue
                topic = f"bench-mix-{'on' if arm else 'off'}"
                await create_topics(broker, topic)
                traffic = Traffic(seed=5, players=args.players, prefix=topic)
                await produce(broker.bootstrap_servers, topic, [message(e) for e in traffic.stream(args.events)])
                await _faults(urls, arm)
                print(f"{label}: {args.events} events over {args.players} players, three destinations ...", flush=True)
                results[label] = await run(broker.bootstrap_servers, topic, [None] * args.events, urls)
                injected = await _faults(urls, False)
                if arm:
                    print(f"  faults injected: {injected}")
            for vendor in VENDORS:
                if len(results) == 1:
                    ((label, times),) = results.items()
                    print(f"{vendor:9} {label} {times[vendor]:6.2f} s")
                    continue
                free, mix = results["fault-free"][vendor], results["fault mix"][vendor]
                print(f"{vendor:9} fault-free {free:6.2f} s   fault mix {mix:6.2f} s   ratio {mix / free:4.2f}x")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
