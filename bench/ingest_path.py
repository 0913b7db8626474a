"""Benchmark: the consume path without Kafka or HTTP, in microseconds per event (decode, map, full ingest).

Feeds 100k realistic Unibo-bound messages straight into Pipeline.ingest (lanes queue them; nothing is sent), so the
figures isolate the per-event CPU cost that bounds a single gateway process.
Run: .venv/bin/python bench/ingest_path.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway import binding
from gateway.app import tune_garbage_collector
from gateway.events import decode
from gateway.metrics import Metrics
from gateway.offsets import PartitionOffsets
from gateway.pipeline import Pipeline

TREE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "dlq_topic": "t.dlq"},
    "destinations": [
        {
            "name": "unibo",
            "connector": "unibo",
            "base_url": "http://127.0.0.1:1",
            "credentials": {"default": {"api_key": "k"}},
            "max_in_flight": 10**7,
            "batch": {"linger_ms": 10**6, "max_events": 10**7},
        }
    ],
}


def _messages(count: int) -> list[SimpleNamespace]:
    traffic = Traffic(seed=3, players=20_000)
    out: list[SimpleNamespace] = []
    while len(out) < count:
        event = traffic.event()
        if unibo_takes(event):
            key, value = message(event)
            out.append(SimpleNamespace(topic="t", partition=0, offset=len(out), key=key, value=value, headers=[]))
    return out


def _per_event(started: float, count: int) -> str:
    return f"{(time.perf_counter() - started) / count * 1e6:6.2f} us/event"


async def _ingest(messages: list[SimpleNamespace]) -> float:
    config = binding.parse(TREE, env={})
    destination = config.destinations[0]
    pipeline = Pipeline(destination, config.gateway.kafka, None, Metrics(CollectorRegistry()))  # type: ignore[arg-type]
    tp = TopicPartition("t", 0)
    offsets = PartitionOffsets()
    now = time.time()
    started = time.perf_counter()
    for item in messages:
        pipeline.ingest(tp, offsets, item, now, time.monotonic())
    elapsed = time.perf_counter() - started
    for lane in pipeline._lanes():
        lane.batcher.purge(lambda _: False)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    count = parser.parse_args().events
    messages = _messages(count)
    values = [m.value for m in messages]
    config = binding.parse(TREE, env={})
    destination = config.destinations[0]
    for label, tune in (("default gc", False), ("tuned gc", True)):
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        if tune:
            tune_garbage_collector()
        started = time.perf_counter()
        events = [decode(v) for v in values]
        decode_cost = _per_event(started, count)
        started = time.perf_counter()
        for event in events:
            destination.connector.map(event, destination.options)
        map_cost = _per_event(started, count)
        del events
        ingest = asyncio.run(_ingest(messages))
        print(
            f"[{label}] decode {decode_cost}   map {map_cost}   full ingest {ingest / count * 1e6:6.2f} us/event"
            f"  (= {count / ingest:,.0f} events/s on one core)"
        )


if __name__ == "__main__":
    main()
