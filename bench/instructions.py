"""Benchmark: CPU instructions per event (or per batch) of the consume path's parts, counted by valgrind's callgrind.

Instruction counts do not move with the machine's load, unlike wall-clock or CPU time on a shared machine, so they
show what a hot-path change saves. The script re-runs itself under callgrind; each stage is set up, then run between
two calls of a marker (zlib.crc32, which nothing else calls) on which callgrind dumps its counters, so a stage's count
holds only its own work. Stages: decode, map, ingest (decode + route + map + batching, per Unibo-bound event),
filtered (ingest of events Unibo does not take), poison (ingest of invalid JSON, dead-lettered, per message),
batch_body (the Unibo request body, per record), log_batch (what a clean delivered batch costs
the logs, per batch: a DEBUG line that INFO skips, and its counts in the tenant's summary line), enable3_request
(the Enable3 client and the HTTP transport sending one event, per request, to a server in another process),
userwise_request (the UserWise client signing and sending one player's records, per request, to that server),
enable3_map and userwise_map (those connectors' mapping of deposits, withdrawals, gamerounds and logins, per event),
enable3_delivery and userwise_delivery (those events through the whole pipeline but Kafka: ingest, map, batch,
deliver to that server and settle, per request sent), aiohttp_floor (a bare aiohttp session posting to that server,
per request: the floor the others are compared with).
Run: .venv/bin/python bench/instructions.py [--events 5000] [--stages decode ingest ...]  (about 2 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from devkit.testbed.traffic import Traffic, message, unibo_takes
from gateway import binding as config_module
from gateway.app import tune_garbage_collector
from gateway.connector import ClientContext
from gateway.delivery import Tenant
from gateway.events import decode
from gateway.logs import configure
from gateway.metrics import Metrics
from gateway.offsets import PartitionOffsets
from gateway.pipeline import Pipeline

STAGES = (
    "decode",
    "map",
    "ingest",
    "filtered",
    "poison",
    "batch_body",
    "log_batch",
    "enable3_request",
    "userwise_request",
    "enable3_map",
    "userwise_map",
    "enable3_delivery",
    "userwise_delivery",
    "aiohttp_floor",
)
PLAYER_TYPES = ("deposit", "withdrawal", "gameround", "login")  # the types every connector maps, one player each
USERWISE_KEYS = {"default": {"api_key": "bench-userwise-api-key", "secret_key": "bench-userwise-secret"}}
TREE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "dlq_topic": "t.dlq"},
    "destinations": [
        {
            "name": "unibo",
            "connector": "unibo",
            "base_url": "http://127.0.0.1:1",
            "credentials": {"default": {"api_key": "bench-unibo-api-key"}},
            "max_in_flight": 10**7,
            "batch": {"linger_ms": 10**6, "max_events": 10**7},
        }
    ],
}


def mark() -> None:
    """The marker callgrind dumps its counters on (--dump-before=crc32)."""
    zlib.crc32(b"")


class _NoDeadLetters:
    """A dead-letter writer that writes nothing, at once (the stage measures the gateway's side of a dead letter)."""

    async def write(self, *_: Any) -> bool:
        return False


def _messages(count: int, takes: Callable[[dict[str, Any]], bool]) -> list[SimpleNamespace]:
    traffic = Traffic(seed=3, players=20_000)
    out: list[SimpleNamespace] = []
    while len(out) < count:
        event = traffic.event()
        if takes(event):
            key, value = message(event)
            out.append(SimpleNamespace(topic="t", partition=0, offset=len(out), key=key, value=value, headers=[]))
    return out


def _vendor(connector: str, url: str = "http://127.0.0.1:1") -> Any:
    """A destination of `connector` at `url`, with bench credentials (TREE's Unibo destination for "unibo")."""
    destination = {**TREE["destinations"][0], "connector": connector, "base_url": url}
    if connector == "userwise":
        destination["credentials"] = USERWISE_KEYS
    return config_module.parse({**TREE, "destinations": [destination]}, env={}).destinations[0]


def _pipeline() -> Pipeline:
    config = config_module.parse(TREE, env={})
    return Pipeline(config.destinations[0], config.gateway.kafka, _NoDeadLetters(), Metrics(CollectorRegistry()))  # type: ignore[arg-type]


async def _ingest(messages: list[SimpleNamespace], settle: bool) -> None:
    """Ingest `messages` between two marks; with `settle`, also run the loop until their dead letters settled."""
    pipeline = _pipeline()
    tp = TopicPartition("t", 0)
    offsets = PartitionOffsets()
    now, monotonic = time.time(), time.monotonic()
    mark()
    for item in messages:
        pipeline.ingest(tp, offsets, item, now, monotonic)
    if settle:
        while len(offsets):
            await asyncio.sleep(0)
    mark()
    for lane in pipeline._lanes():
        lane.batcher.purge(lambda _: False)
    await pipeline._cancel_workers()


async def _log_batches(count: int) -> None:
    """Log `count` clean batches of 1,000 records between two marks; the summary line is written after them."""
    engine = _pipeline()._stage.engine
    tenant = Tenant("default", None)
    stats: Counter[str] = Counter(sends=1, delivered=1000)
    started = time.monotonic()
    mark()
    for _ in range(count):
        engine._log_batch(tenant, 1000, stats, started)
    mark()
    await engine.close()


def _stage(name: str, count: int) -> int:
    """Run one stage between two marks; returns how many units (events, records or batches) it handled."""
    if name == "decode":
        values = [m.value for m in _messages(count, unibo_takes)]
        mark()
        for value in values:
            decode(value)
        mark()
    elif name in ("map", "enable3_map", "userwise_map"):
        destination = _vendor("unibo" if name == "map" else name.removesuffix("_map"))
        players: Callable[[dict[str, Any]], bool] = lambda event: event["type"] in PLAYER_TYPES  # noqa: E731
        events = [decode(m.value) for m in _messages(count, unibo_takes if name == "map" else players)]
        mapping, options = destination.connector.map, destination.options
        mark()
        for event in events:
            mapping(event, options)
        mark()
    elif name in ("ingest", "filtered"):
        takes = unibo_takes if name == "ingest" else (lambda event: not unibo_takes(event))
        asyncio.run(_ingest(_messages(count, takes), settle=False))
    elif name == "poison":
        poison = [
            SimpleNamespace(topic="t", partition=0, offset=i, key=b"k", value=b"{not json", headers=[])
            for i in range(count)
        ]
        asyncio.run(_ingest(poison, settle=True))
    elif name == "batch_body":
        from connectors.unibo.client import batch_body  # noqa: PLC0415

        destination = config_module.parse(TREE, env={}).destinations[0]
        records = [
            record
            for m in _messages(count, unibo_takes)
            for record in destination.connector.map(decode(m.value), destination.options)
        ]
        batches = [records[i : i + 1000] for i in range(0, len(records), 1000)]
        mark()
        for batch in batches:
            batch_body(batch)
        mark()
        return len(records)
    elif name in ("enable3_request", "userwise_request", "enable3_delivery", "userwise_delivery", "aiohttp_floor"):
        return _served(name, count)
    elif name == "log_batch":
        asyncio.run(_log_batches(count))
    return count


def _served(name: str, count: int) -> int:
    """Run a stage that sends requests, against `_serve` in another process; returns the requests sent."""
    port = 18000 + os.getpid() % 1000
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(60)
    url = f"http://127.0.0.1:{port}"
    try:
        if name.endswith("_delivery"):
            return asyncio.run(_deliveries(name.removesuffix("_delivery"), count, url))
        if name == "aiohttp_floor":
            return asyncio.run(_bare_aiohttp_requests(count, url))
        return asyncio.run((_enable3_requests if name == "enable3_request" else _userwise_requests)(count, url))
    finally:
        server.terminate()


def _serve(port: int, ready: Any) -> None:
    """A bare aiohttp server answering every POST with 200 (runs in another process, outside callgrind)."""
    from aiohttp import web  # noqa: PLC0415

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/v1/event", handle)
        app.router.add_post("/api/v1/appuser/{tail:.+}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _bare_aiohttp_requests(count: int, url: str) -> int:
    """`count` POSTs of an Enable3-sized body from a bare aiohttp session, one at a time, between two marks: the
    floor the per-request stages are compared with (cpu_per_request.py's floor, counted rather than timed)."""
    import aiohttp  # noqa: PLC0415

    body = b'{"event_id":"e-1","user_id":"p-1","type":"deposit","amount":12.5,"currency":"EUR"}'
    headers = {"X-API-KEY": "bench-key", "content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:

        async def post() -> None:
            async with session.post(f"{url}/api/v1/event", data=body, headers=headers) as response:
                await response.read()

        for _ in range(50):  # a warm pool and warm code
            await post()
        mark()
        for _ in range(count):
            await post()
        mark()
    return count


async def _enable3_requests(count: int, url: str) -> int:
    """`count` Enable3 requests through the gateway's client and transport, one at a time, between two marks."""
    from connectors.enable3.config import Enable3Credentials  # noqa: PLC0415
    from gateway.http_client import HttpTransport  # noqa: PLC0415
    from gateway.metrics import DestinationMetrics  # noqa: PLC0415

    destination = _vendor("enable3", url)
    transport = HttpTransport(destination.config, DestinationMetrics(Metrics(CollectorRegistry()), "e"), pool_size=4)
    client = destination.connector.client(
        ClientContext(destination.config, destination.options, destination.settings, transport)
    )
    credentials = Enable3Credentials(api_key="bench-enable3-api-key")
    event = next(decode(m.value) for m in _messages(1, lambda e: e["type"] == "deposit"))
    records = destination.connector.map(event, destination.options)
    for _ in range(50):  # a warm pool and warm code
        await client.send(credentials, records)
    mark()
    for _ in range(count):
        await client.send(credentials, records)
    mark()
    await transport.close()
    return count


async def _userwise_requests(count: int, url: str) -> int:
    """`count` UserWise sends of one player's records through the gateway's client and transport, one at a time,
    between two marks; returns the requests sent."""
    from connectors.userwise.config import UserWiseCredentials  # noqa: PLC0415
    from connectors.userwise.requests import plan  # noqa: PLC0415
    from gateway.http_client import HttpTransport  # noqa: PLC0415
    from gateway.metrics import DestinationMetrics  # noqa: PLC0415

    destination = _vendor("userwise", url)
    transport = HttpTransport(destination.config, DestinationMetrics(Metrics(CollectorRegistry()), "u"), pool_size=4)
    client = destination.connector.client(
        ClientContext(destination.config, destination.options, destination.settings, transport)
    )
    credentials = UserWiseCredentials.model_validate(USERWISE_KEYS["default"])
    # Each send a different deposit (its own player and body, so its own signed URL, as in production: the HTTP
    # client's URL caches never hit); one deposit is one player's events and attributes requests.
    events = [decode(m.value) for m in _messages(count + 50, lambda e: e["type"] == "deposit")]
    sends = [destination.connector.map(event, destination.options) for event in events]
    requests = sum(len(planned) for records in sends[50:] for planned in plan(records, 1000))
    for records in sends[:50]:  # a warm pool and warm code
        await client.send(credentials, records)
    mark()
    for records in sends[50:]:
        await client.send(credentials, records)
    mark()
    await transport.close()
    return requests


async def _deliveries(connector: str, count: int, url: str) -> int:
    """`count` player events through a `connector` pipeline (ingest, decode, map, batch, deliver to the server,
    settle), between two marks; returns the requests the transport sent."""
    tree = {**TREE, "destinations": [{"name": "v", "connector": connector, "base_url": url}]}
    if connector == "userwise":
        tree["destinations"][0]["credentials"] = USERWISE_KEYS
    else:
        tree["destinations"][0]["credentials"] = {"default": {"api_key": "bench-enable3-api-key"}}
    config = config_module.parse(tree, env={})
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(config.destinations[0], config.gateway.kafka, _NoDeadLetters(), metrics)  # type: ignore[arg-type]
    tp = TopicPartition("t", 0)
    messages = _messages(count + 50, lambda event: event["type"] in PLAYER_TYPES)
    offsets = PartitionOffsets()
    for item in messages[:50]:  # warm code and a warm pool
        pipeline.ingest(tp, offsets, item, time.time(), time.monotonic())
    while len(offsets):
        await asyncio.sleep(0.05)  # polled seldom: the loop's own work stays out of the count
    before = _sent(metrics)
    now, monotonic = time.time(), time.monotonic()
    mark()
    for item in messages[50:]:
        pipeline.ingest(tp, offsets, item, now, monotonic)
    while len(offsets):
        await asyncio.sleep(0.05)
    mark()
    await pipeline._cancel_workers()
    await pipeline._stage.close()
    return _sent(metrics) - before


def _sent(metrics: Metrics) -> int:
    """Requests counted by `gateway_http_requests_total` so far."""
    samples = (sample for metric in metrics.http_requests.collect() for sample in metric.samples)
    return int(sum(sample.value for sample in samples if sample.name.endswith("_total")))


def _inside(stages: list[str], count: int) -> None:
    with open(os.devnull, "w") as devnull:
        configure("info", "json", stream=devnull)  # the production level: INFO lines are rendered and written
        tune_garbage_collector()
        units = [_stage(name, count) for name in stages]
    print(" ".join(map(str, units)))


def _totals(directory: Path) -> list[int]:
    """Each marker dump's instruction total, in dump order (the end-of-program file has no number)."""
    dumps = sorted(directory.glob("cg.*.*"), key=lambda path: int(path.suffix[1:]))
    return [int(re.search(rb"^totals: (\d+)", path.read_bytes(), re.MULTILINE).group(1)) for path in dumps]  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        _inside(args.stages, args.events)
        return
    with tempfile.TemporaryDirectory() as directory:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=crc32",
            f"--callgrind-out-file={directory}/cg.%p",
            sys.executable,
            __file__,
            "--inside",
            "--events",
            str(args.events),
            "--stages",
            *args.stages,
        ]
        # One hash seed for every run: string hashing moves dict and set layouts, and so the counts, by a few percent.
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
        units = [int(unit) for unit in done.stdout.split()]
        totals = _totals(Path(directory))
    if len(totals) != 2 * len(args.stages):
        raise SystemExit(f"expected {2 * len(args.stages)} dumps, got {len(totals)}: something else calls crc32")
    for index, (name, unit) in enumerate(zip(args.stages, units, strict=True)):
        per = {"log_batch": "batch", "batch_body": "record"}.get(name, "event")
        per = "request" if name.endswith(("_request", "_delivery", "_floor")) else per
        plural = "batches" if per == "batch" else per + "s"
        print(f"{name:10} {totals[2 * index + 1] / unit:12,.0f} instructions per {per}  ({unit} {plural})")


if __name__ == "__main__":
    main()
