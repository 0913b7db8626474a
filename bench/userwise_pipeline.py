"""Benchmark: the UserWise pipeline end to end on the embedded broker, against the UserWise sandbox in another process.

UserWise takes one request per player and endpoint run, so the figures are events/s *and* requests/s at 10k players.
Prints: end-to-end events/s and requests/s from a backlog (commits included), records per request, peak RSS of the
gateway process, and produce → vendor-receive latency percentiles at a fixed input rate.
Run: .venv/bin/python bench/userwise_pipeline.py [--events 100000] [--players 10000] [--rate 3000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from harness import (
    Message,
    RssSampler,
    SandboxProcess,
    create_topics,
    drain,
    gateway_tree,
    in_child,
    latencies,
    latency_summary,
    produce,
    produce_at_rate,
    running_gateway,
)

from connectors.userwise import connector
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic, message
from gateway import event_loop
from gateway.events import decode
from gateway.logs import configure

if TYPE_CHECKING:
    from devkit.sandbox.userwise.sandbox import UserWiseSandbox

KEY, SECRET = "bench-userwise-key", "bench-userwise-secret"
OVERRIDES: dict[str, Any] = {}


def _sandbox() -> UserWiseSandbox:
    """The UserWise sandbox, built in the sandbox process."""
    from devkit.sandbox.userwise.sandbox import UserWiseSandbox  # noqa: PLC0415 - child process only

    return UserWiseSandbox({KEY: "default"}, SECRET)


def _answer(sandbox: UserWiseSandbox, request: str) -> Any:
    """'count': distinct event_uids; 'stats': requests and duplicates; 'first_seen': id -> first receive time."""
    log = sandbox.app_log("default")
    if request == "count":
        return len(log.event_uids)
    if request == "stats":
        return {"requests": sandbox.stats.accepted, "duplicates": log.duplicates}
    return dict(log.first_seen)


def _events(count: int, players: int, prefix: str) -> tuple[list[Message], set[str]]:
    """UserWise-bound messages, and the event_uids that must arrive as events (the completion and latency probe)."""
    traffic = Traffic(seed=77, players=players, prefix=prefix)
    options = connector.options_model.model_validate({})
    out: list[Message] = []
    uids: set[str] = set()
    while len(out) < count:
        event = traffic.event()
        if event["type"] == "revenue":
            event["player_id"] = f"p{len(out) % players:06d}"  # the generator's revenue is operator-level
        records = connector.map(decode(orjson.dumps(event)), options)
        if records:
            out.append(message(event))
            if any(record.route == "events" for record in records):
                uids.add(event["event_id"])
    return out, uids


def _produce_backlog(bootstrap: str, topic: str, count: int, players: int) -> None:
    asyncio.run(produce(bootstrap, topic, _events(count, players, "bl")[0]))


def _destination(url: str) -> dict[str, Any]:
    credentials = {"default": {"api_key": KEY, "secret_key": SECRET}}
    return {"name": "userwise", "connector": "userwise", "base_url": url, "credentials": credentials, **OVERRIDES}


async def backlog(broker: EmbeddedBroker, sandbox: SandboxProcess, count: int, players: int) -> None:
    """Produce a backlog, then time the pipeline from start until everything is delivered and committed."""
    topic = "bench-uw-backlog"
    await create_topics(broker, topic)
    print(f"producing a backlog of {count} UserWise-bound events over {players} players (child process) ...")
    await asyncio.to_thread(in_child, _produce_backlog, broker.bootstrap_servers, topic, count, players)
    expected = len(_events(count, players, "bl")[1])
    tree = gateway_tree(broker.bootstrap_servers, topic, _destination(sandbox.url))
    async with RssSampler() as rss, running_gateway(tree):
        delivered, elapsed = await drain(sandbox, tree, expected, count, poll=0.1)
        stats = await sandbox.ask("stats")
    print(
        f"end-to-end (backlog {count}, commits included): {count / elapsed:,.0f} events/s, "
        f"{stats['requests'] / elapsed:,.0f} requests/s ({elapsed:.2f} s; delivered after "
        f"{delivered:.2f} s; {count / max(1, stats['requests']):.2f} events per request; "
        f"{stats['duplicates']} duplicates)"
    )
    print(rss.summary())


async def fixed_rate(
    broker: EmbeddedBroker, sandbox: SandboxProcess, rate: float, seconds: float, players: int
) -> None:
    """Produce at a fixed rate into a running gateway; latency = produce time → vendor receive time."""
    topic = "bench-uw-rate"
    await create_topics(broker, topic)
    await sandbox.ask("reset")
    count = int(rate * seconds)
    batch, probes = _events(count, players, "fr")
    async with running_gateway(gateway_tree(broker.bootstrap_servers, topic, _destination(sandbox.url))):
        sent_at = await produce_at_rate(broker.bootstrap_servers, topic, batch, rate, step=50, linger_ms=5)
        await sandbox.wait_for_count(len(probes))
        stats = await sandbox.ask("stats")
        waits = latencies(sent_at, await sandbox.ask("first_seen"), probes)
    linger = _destination("").get("batch", {}).get("linger_ms", connector.defaults.linger_ms)
    print(
        f"latency at {rate:,.0f} events/s for {seconds:.0f} s over {players} players (produce → vendor receive, "
        f"linger {linger} ms): {latency_summary(waits)}; {stats['requests']} requests "
        f"({count / max(1, stats['requests']):.2f} events per request)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=None, help="override the destination's concurrency")
    parser.add_argument("--max-events", type=int, default=None, help="override the destination's batch max_events")
    args = parser.parse_args()
    if args.concurrency:
        OVERRIDES["concurrency"] = args.concurrency
    if args.max_events:
        OVERRIDES["batch"] = {"max_events": args.max_events}
    configure("warning", "json")
    with SandboxProcess(_sandbox, _answer) as sandbox:
        async with EmbeddedBroker() as broker:
            await backlog(broker, sandbox, args.events, args.players)
            await fixed_rate(broker, sandbox, args.rate, args.seconds, args.players)


if __name__ == "__main__":
    event_loop.run(main())
