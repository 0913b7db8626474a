"""Benchmark: Unibo, Enable3 and UserWise in one gateway, fault-free and then under the sandboxes' standard fault mix.

The fault mix (devkit.sandbox.faults.standard_fault_mix) on every vendor request: 3% 5xx, 2% 429 with
`Retry-After: 1`, 1% connection resets, 0.1% hangs (the gateway's request timeout ends them). The sandboxes run in
their own process (`gateway sandbox`); the destinations use their defaults. Each destination's completion time is
from the gateway joining its groups until that destination's group has committed every offset of the backlog.
Prints one line per destination: fault-free seconds, fault-mix seconds and their ratio (the target is <= 2x), then
the fault mix's request timeouts (cut by the adaptive deadline or by the `timeout` cap) and the effective timeout at
the end (docs/configuration.md, adaptive_timeout), and each run's vendor requests (count, mean duration) with the
machine's load average.
On a shared machine the two runs of one round can see different loads: `--repeat N` alternates N rounds and prints
the median ratio too.
Run: .venv/bin/python bench/fault_mix.py [--events 15000] [--players 1000] [--timeout S] [--no-adaptive] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import PARTITIONS, SANDBOX_KEYS, create_topics, produce, spawn_sandboxes, wait_for_sandboxes

from devkit.sandbox.faults import standard_fault_mix
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, message
from gateway import binding, event_loop
from gateway.app import Gateway
from gateway.logs import configure

ROOT = Path(__file__).resolve().parents[1]
VENDORS = tuple(SANDBOX_KEYS)
KEYS = SANDBOX_KEYS


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


TIMEOUTS: dict[str, dict[str, float]] = {}
"""Per destination, after the last run: request timeouts by deadline (adaptive, cap), the effective timeout, and the
vendor requests' count and mean duration."""


def _timeouts(gateway: Gateway) -> dict[str, dict[str, float]]:
    def value(name: str, **labels: str) -> float:
        return gateway.registry.get_sample_value(name, labels) or 0.0

    return {
        vendor: {
            "adaptive": value("gateway_http_timeouts_total", destination=vendor, deadline="adaptive"),
            "cap": value("gateway_http_timeouts_total", destination=vendor, deadline="cap"),
            "effective": value("gateway_http_request_timeout_seconds", destination=vendor),
            "requests": value("gateway_http_request_duration_seconds_count", destination=vendor),
            "seconds": value("gateway_http_request_duration_seconds_sum", destination=vendor),
        }
        for vendor in VENDORS
    }


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
    gateway = Gateway(binding.parse(tree, env={}))
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
        TIMEOUTS.update(_timeouts(gateway))
    finally:
        gateway.stop()
        await task
        for consumer in consumers.values():
            await consumer.stop()
    return done


async def _round(
    broker: EmbeddedBroker, urls: dict[str, str], args: argparse.Namespace, round_: int
) -> dict[str, dict[str, float]]:
    """One fault-free run and one fault-mix run (each on a topic of its own): seconds per destination for each."""
    results = {}
    for label, arm in (("fault-free", False), ("fault mix", True)):
        if args.only is not None and label != args.only:
            continue
        topic = f"bench-mix-{'on' if arm else 'off'}-{round_}"
        await create_topics(broker, topic)
        traffic = Traffic(seed=5, players=args.players, prefix=topic)
        await produce(broker.bootstrap_servers, topic, [message(e) for e in traffic.stream(args.events)])
        before = await _faults(urls, arm)
        print(f"{label}: {args.events} events over {args.players} players, three destinations ...", flush=True)
        results[label] = await run(broker.bootstrap_servers, topic, [None] * args.events, urls)
        after = await _faults(urls, False)
        # The per-request connectors are bound by their request slots, so their time follows the vendor's answer
        # time: a mean far from the other run's means the shared machine's load changed between the two.
        answers = ", ".join(
            f"{vendor} {seen['requests']:.0f} x {1000 * seen['seconds'] / max(seen['requests'], 1):.0f} ms"
            for vendor, seen in TIMEOUTS.items()
            if vendor != "unibo"
        )
        print(f"  requests (count x mean duration): {answers}; load average {os.getloadavg()[0]:.1f}")
        if arm:
            # The sandboxes count since they started: this run's faults are the difference.
            injected = {
                vendor: {kind: count - before[vendor].get(kind, 0) for kind, count in counts.items()}
                for vendor, counts in after.items()
            }
            print(f"  faults injected: {injected}")
            for vendor, seen in TIMEOUTS.items():
                print(
                    f"  {vendor:9} timeouts: adaptive {seen['adaptive']:.0f}, cap {seen['cap']:.0f}; "
                    f"effective timeout at the end {seen['effective']:.2f} s"
                )
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--players", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=None, help="the destinations' request timeout (default 10)")
    parser.add_argument("--no-adaptive", action="store_true", help="adaptive_timeout off: every request gets timeout")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of fault-free then fault mix; prints each and the median ratio"
    )
    parser.add_argument("--only", choices=["fault-free", "fault mix"], default=None, help="run one of the two")
    args = parser.parse_args()
    if args.timeout:
        OVERRIDES["timeout"] = args.timeout
    if args.no_adaptive:
        OVERRIDES["adaptive_timeout"] = {"enabled": False}
    configure(level="error", fmt="json")
    process, urls = spawn_sandboxes()
    try:
        await wait_for_sandboxes(urls)
        with EmbeddedBroker() as broker:
            ratios: dict[str, list[float]] = {vendor: [] for vendor in VENDORS}
            for round_ in range(args.repeat):
                if args.repeat > 1:
                    print(f"round {round_ + 1} of {args.repeat}", flush=True)
                results = await _round(broker, urls, args, round_)
                for vendor in VENDORS:
                    if len(results) == 1:
                        ((label, times),) = results.items()
                        print(f"{vendor:9} {label} {times[vendor]:6.2f} s")
                        continue
                    free, mix = results["fault-free"][vendor], results["fault mix"][vendor]
                    ratios[vendor].append(mix / free)
                    print(f"{vendor:9} fault-free {free:6.2f} s   fault mix {mix:6.2f} s   ratio {mix / free:4.2f}x")
            if args.repeat > 1 and args.only is None:
                for vendor, values in ratios.items():
                    listed = ", ".join(f"{value:4.2f}" for value in values)
                    print(f"{vendor:9} median ratio {statistics.median(values):4.2f}x   (rounds: {listed})")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    event_loop.run(main())
