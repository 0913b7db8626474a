"""Benchmark: the Unibo pipeline beside its peers, in one run on the same broker, topic and Unibo sandbox.

Three contenders drain one backlog of Unibo-bound events (the sandbox runs in its own process and is reset between
contenders):
- raw: the limit, aiokafka getmany plus orjson.loads of every value, no group, no HTTP;
- quix: Quix Streams (the `bench` extra) in its own process, JSON values mapped to Unibo items by a plain function and
  posted by a BatchingSink at each checkpoint (1 s), at most 10,000 items per request; timed from the application's
  start (its group join included) until the sandbox holds every item;
- gateway: this gateway's Unibo pipeline, from its group join until every offset is committed.
Prints events/s for each and the ratios gateway/quix and gateway/raw.
Run: .venv/bin/python bench/peers.py [--events 1000000]   (pip install -c constraints.txt -e '.[bench]' first)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    PARTITIONS,
    UNIBO_KEY,
    SandboxProcess,
    create_topics,
    drain,
    gateway_tree,
    in_child,
    messages,
    produce,
    run_gateway_process,
    unibo_answer,
    unibo_destination,
    unibo_sandbox,
)
from harness import running_gateway as gateway_running

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import unibo_takes
from gateway import event_loop
from gateway.logs import configure

TOPIC = "bench-peers"
MAX_ITEMS = 10_000  # Unibo's guidance: at most 10,000 events per request
_GENDER = {"male": "M", "female": "F"}
_PLAYER = ("country", "currency", "affiliate", "tags", "consent_email", "is_blocked")
_GAME = ("name", "provider", "categories", "features", "themes", "device")


def _produce_backlog(bootstrap: str, count: int) -> None:
    asyncio.run(produce(bootstrap, TOPIC, messages(count, "peers", unibo_takes)))


# ---- raw: the limit --------------------------------------------------------------------------------------------


async def raw_rate(bootstrap: str, count: int) -> float:
    """Events/s of aiokafka getmany plus orjson.loads, no group, no HTTP."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_bytes=16 * 2**20
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        seen = 0
        loads = orjson.loads
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    loads(record.value)
                seen += sum(len(records) for records in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


# ---- Quix Streams ------------------------------------------------------------------------------------------------


def unibo_item(event: dict[str, Any]) -> dict[str, Any]:
    """A Unibo item from an event dict, as a team would write it for Quix Streams (no validation library)."""
    kind = event["type"]
    data: dict[str, Any] = {"unique_id": event["event_id"], "timestamp": event["occurred_at"]}
    if kind == "game":
        data["game_id"] = event["game_id"]
        data.update({name: event[name] for name in _GAME if event.get(name) is not None})
        if "has_freespins" in event:
            data["has_freespins"] = {True: "yes", False: "no"}.get(event["has_freespins"], "unknown")
        return {"event": kind, "data": data}
    data["player_id"] = event["player_id"]
    if kind == "gameround":
        data.update(
            game_id=event["game_id"],
            round_id=event["round_id"],
            amount=float(event["amount"]),
            currency=event["currency"].upper(),
            is_win=event["kind"] == "win",
            is_bonus=bool(event.get("is_bonus", False)),
        )
    elif kind in ("deposit", "withdrawal"):
        data.update(amount=float(event["amount"]), currency=event["currency"].upper())
        data["method"] = event.get("method") or "unknown"
        kind = "deposit" if kind == "deposit" else "withdraw"
    elif kind == "player":
        if "registered_at" in event:
            data["registration_date"] = event["registered_at"]
        if "gender" in event:
            data["gender"] = _GENDER.get(event["gender"])
        data.update({name: event[name] for name in _PLAYER if name in event})
    return {"event": kind, "data": data}


def _run_quix(bootstrap: str, group: str, port: int, started: Any) -> None:
    """Quix Streams: the topic's JSON values mapped to Unibo items and posted in batches (in its own process)."""
    from quixstreams import Application  # noqa: PLC0415 - the optional bench extra
    from quixstreams.sinks.base import BatchingSink, SinkBatch  # noqa: PLC0415

    class UniboSink(BatchingSink):  # type: ignore[misc, unused-ignore]  # Any without the bench extra
        """POSTs each checkpoint's items to Unibo, at most MAX_ITEMS per request, over one keep-alive connection."""

        def __init__(self) -> None:
            super().__init__()
            self._connection = HTTPConnection("127.0.0.1", port)

        def write(self, batch: SinkBatch) -> None:
            items = [item.value for item in batch]
            for start in range(0, len(items), MAX_ITEMS):
                body = orjson.dumps({"items": items[start : start + MAX_ITEMS]})
                self._connection.request(
                    "POST", "/api/v1/events", body, {"x-api-key": UNIBO_KEY, "content-type": "application/json"}
                )
                response = self._connection.getresponse()
                response.read()
                if response.status >= 300:
                    raise RuntimeError(f"Unibo answered {response.status}")

    with tempfile.TemporaryDirectory() as state:
        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",
            commit_interval=1.0,
            state_dir=state,
            auto_create_topics=False,
            loglevel="WARNING",
        )
        frame = app.dataframe(app.topic(TOPIC, value_deserializer="json"))
        frame = frame.apply(unibo_item)
        frame.sink(UniboSink())
        started.set()
        app.run()


async def quix_rate(bootstrap: str, sandbox: SandboxProcess, count: int) -> float:
    """Events/s of the Quix Streams pipeline, from the application's start until the sandbox holds every item."""
    context = mp.get_context("spawn")
    started = context.Event()
    process = context.Process(target=_run_quix, args=(bootstrap, f"bench-quix-{time.time_ns()}", sandbox.port, started))
    process.start()
    try:
        await asyncio.to_thread(started.wait, 120)
        began = time.perf_counter()
        while await sandbox.ask("count") < count:
            if not process.is_alive():
                raise RuntimeError(f"Quix Streams exited with code {process.exitcode}")
            await asyncio.sleep(0.1)
        return count / (time.perf_counter() - began)
    finally:
        process.terminate()
        process.join(10)


# ---- this gateway --------------------------------------------------------------------------------------------------


async def gateway_rate(bootstrap: str, sandbox: SandboxProcess, count: int) -> float:
    """Events/s of the gateway's Unibo pipeline, from its group join until every offset is committed."""
    tree = gateway_tree(bootstrap, TOPIC, unibo_destination(sandbox.url), group_prefix=f"bench-peers-{time.time_ns()}")
    async with gateway_running(tree):
        _, elapsed = await drain(sandbox, tree, count, count, poll=0.1)
    return count / elapsed


async def gateway_process_rate(bootstrap: str, sandbox: SandboxProcess, count: int, workers: int) -> float:
    """Events/s of `gateway run --workers N`, from its first delivery until every offset is committed."""
    tree = gateway_tree(
        bootstrap, TOPIC, unibo_destination(sandbox.url), group_prefix=f"bench-peers-w{workers}-{time.time_ns()}"
    )
    with tempfile.TemporaryDirectory() as directory:
        result = await run_gateway_process(sandbox, tree, workers, count, Path(directory) / "gateway.yaml")
    return result.rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-quix", action="store_true", help="when Quix Streams is not installed")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="N >= 1: the gateway as `gateway run --workers N` processes, timed from its first delivery "
        "(default 0: its Unibo pipeline in this process, timed from its group join)",
    )
    args = parser.parse_args()
    configure("warning", "json")
    count = args.events
    with SandboxProcess(unibo_sandbox, unibo_answer) as sandbox:
        async with EmbeddedBroker() as broker:
            await create_topics(broker, TOPIC)
            print(f"producing a backlog of {count:,} Unibo events (in a child process) ...", flush=True)
            await asyncio.to_thread(in_child, _produce_backlog, broker.bootstrap_servers, count)
            raw = await raw_rate(broker.bootstrap_servers, count)
            print(f"raw aiokafka getmany + orjson.loads: {raw:,.0f} events/s", flush=True)
            quix = None
            if not args.skip_quix:
                quix = await quix_rate(broker.bootstrap_servers, sandbox, count)
                print(f"Quix Streams, batching sink:        {quix:,.0f} events/s", flush=True)
                await sandbox.ask("reset")
            if args.workers:
                gateway = await gateway_process_rate(broker.bootstrap_servers, sandbox, count, args.workers)
                label = f"this gateway, --workers {args.workers}:"
            else:
                gateway = await gateway_rate(broker.bootstrap_servers, sandbox, count)
                label = "this gateway, Unibo pipeline:"
            print(f"{label:35} {gateway:,.0f} events/s", flush=True)
    ratios = f"gateway/raw {gateway / raw:.3f}"
    if quix is not None:
        ratios = f"gateway/quix {gateway / quix:.2f}   " + ratios
    print(ratios)


if __name__ == "__main__":
    event_loop.run(main())
