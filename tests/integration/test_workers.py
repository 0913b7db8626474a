"""`gateway run --workers 2` as an operator runs it: two consumer processes under one listener, drained on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import orjson

from connectors.intarget.formats import stamp_text
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic, unibo_takes
from tests.integration.conftest import RunningSandbox
from tests.integration.harness import (
    GatewayProcess,
    committed,
    gateway_config,
    http_get,
    json_lines,
    metric_value,
    produce,
    unibo_destination,
    wait_for,
    write_config,
)
from tests.integration.intarget import intarget_destination, rows

GRACE = 10.0
STOP_MARGIN = 8.0  # gateway/workers.py


async def _four_partitions(broker: EmbeddedBroker, topic: str) -> str:
    name = f"{topic}-x4"
    await broker.create_topic(name, partitions=4)
    await broker.create_topic(f"{name}.dlq", partitions=1)
    return name


def _process(tmp_path: Path, tree: dict[str, Any], workers: int = 2) -> GatewayProcess:
    process = GatewayProcess(write_config(tmp_path / "gateway.yaml", tree), tmp_path / "gateway")
    process.arguments = ["--workers", str(workers)]
    return process


async def _metrics(port: int) -> str:
    status, text = await http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return text


async def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = await http_get(f"http://127.0.0.1:{port}/readyz")
    return status, orjson.loads(body) if body else {}


async def _ready(port: int) -> None:
    async def ready() -> bool:
        return (await _readyz(port))[0] == 200

    await wait_for(ready, 90, "every worker to be ready")


def _last_assignments(logs: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Each worker's partitions after its last `partitions assigned` line."""
    found: dict[int, list[str]] = {}
    for line in logs:
        if line.get("event") == "partitions assigned":
            found[line["worker"]] = line["partitions"]
    return found


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


async def test_two_workers_share_the_partitions_deliver_each_event_once_and_drain(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """Two workers split a 4-partition topic: every event reaches Unibo once, /metrics counts each event once (not
    once per worker), /readyz covers both workers, and SIGTERM drains both, commits to the end and exits 0."""
    topic = await _four_partitions(broker, topic)
    events = list(Traffic(seed=61, players=400, prefix="wk").stream(6000))
    expected = {e["event_id"] for e in events if unibo_takes(e)}
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)], http_port=port, grace=GRACE)
    process = _process(tmp_path, tree)
    try:
        process.start()
        await _ready(port)
        status, body = await _readyz(port)
        assert (status, body["destinations"]) == (200, {"unibo": "ready"})
        assert metric_value(await _metrics(port), "gateway_ready") == 1.0
        assert (await http_get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
        await produce(broker.bootstrap_servers, topic, events)
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 120, "every event at Unibo")

        async def settled() -> bool:
            text = await _metrics(port)
            lag = [float(line.rsplit(" ", 1)[1]) for line in _samples(text, "gateway_consumer_lag")]
            return len(lag) == 4 and sum(lag) == 0 and metric_value(text, "gateway_in_flight_events") == 0

        await wait_for(settled, 30, "lag and in-flight events at 0")
        text = await _metrics(port)
        process.signal(signal.SIGTERM)
        assert await process.wait(GRACE + STOP_MARGIN + 5) == 0
    finally:
        process.stop()
    assert set(unibo.sandbox.unique_ids("default")) == expected
    assert unibo.sandbox.tenant("default").duplicates == 0
    # Aggregated over the workers: each event once, neither doubled nor halved.
    assert metric_value(text, "gateway_events_consumed_total", destination="unibo") == len(events)
    delivered = sum(
        float(line.rsplit(" ", 1)[1]) for line in _samples(text, "gateway_events_delivered_total") if "unibo" in line
    )
    assert delivered == len(expected)
    assert metric_value(text, "gateway_delivery_latency_seconds_count", destination="unibo") == len(expected)
    # Gauges are merged into one series each: no per-process `pid` label, dashboards unchanged.
    for gauge in ("gateway_consumer_lag", "gateway_in_flight_events", "gateway_destination_up", "gateway_ready"):
        assert _samples(text, gauge), gauge
        assert all('pid="' not in line for line in _samples(text, gauge)), gauge
    assert len(_samples(text, "gateway_in_flight_events")) == 1
    assert metric_value(text, "gateway_destination_up", destination="unibo") == 1.0
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.unibo", topic)
    assert sum(o or 0 for o in offsets.values()) == len(events)
    logs = json_lines(process.output())
    assignments = _last_assignments(logs)
    assert sorted(assignments) == [1, 2], assignments  # both workers consumed, and only they
    assert all(assignments.values()), assignments
    assert sorted(p for partitions in assignments.values() for p in partitions) == [f"{topic}/{n}" for n in range(4)]
    assert {line.get("worker") for line in logs if line.get("event") == "pipeline stopped"} == {1, 2}
    assert all("worker" in line for line in logs), [line for line in logs if "worker" not in line][:3]


async def test_a_worker_that_dies_stops_the_gateway_with_a_failure(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """SIGKILL one worker: the other worker and the supervisor drain, and the exit status is 1 (so Kubernetes
    restarts the pod)."""
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)], http_port=port, grace=GRACE)
    process = _process(tmp_path, tree)
    try:
        process.start()
        await _ready(port)
        started = next(line for line in json_lines(process.output()) if line.get("event") == "workers started")
        victim = int(started["workers"]["2"])
        os.kill(victim, signal.SIGKILL)
        assert await process.wait(GRACE + STOP_MARGIN + 5) == 1
    finally:
        process.stop()
    logs = json_lines(process.output())
    died = [line for line in logs if line.get("event", "").startswith("worker exited unexpectedly")]
    assert [(line["failed_worker"], line["exit_code"]) for line in died] == [(2, -signal.SIGKILL)]
    assert {line.get("worker") for line in logs if line.get("event") == "pipeline stopped"} == {1}


async def test_a_connector_extension_runs_once_in_the_supervisor(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """With InTarget beside Unibo, the feed server and its store writer run once, in the supervisor (a second copy
    could not bind the feed's port), while Unibo spreads over the workers; both receive every event."""
    events = [e for e in Traffic(seed=62, players=200, prefix="ext").stream(2000)]
    logins = {e["event_id"] for e in events if e["type"] == "login"}
    expected = {e["event_id"] for e in events if unibo_takes(e)}
    port, feed_port = free_port(), free_port()
    destinations = [unibo_destination(unibo.url), intarget_destination(f"sqlite:///{tmp_path / 'feeds.db'}", feed_port)]
    tree = gateway_config(broker.bootstrap_servers, topic, destinations, http_port=port, grace=GRACE)
    process = _process(tmp_path, tree)
    try:
        process.start()
        await _ready(port)
        assert await _readyz(port) == (
            200,
            {"status": "ready", "destinations": {"intarget": "ready", "unibo": "ready"}},
        )
        await produce(broker.bootstrap_servers, topic, events)
        await wait_for(lambda: unibo.sandbox.total_unique >= len(expected), 60, "every event at Unibo")

        async def stored() -> bool:
            found = await rows(feed_port, "logins", "2000-01-01 00:00:00", stamp_text(int(time.time())))
            return {row["id"] for row in found} == logins

        await wait_for(stored, 60, "every login in the feed")
        process.signal(signal.SIGTERM)
        assert await process.wait(GRACE + STOP_MARGIN + 5) == 0
    finally:
        process.stop()
    logs = json_lines(process.output())
    supervising = next(line for line in logs if line.get("event") == "supervising")
    assert (supervising["in_workers"], supervising["in_supervisor"]) == (["unibo"], ["intarget"])
    started = [line.get("worker") for line in logs if line.get("event") == "extension started"]
    assert started == [0]
    pipelines = sorted(
        (line["destination"], line["worker"]) for line in logs if line.get("event") == "pipeline started"
    )
    assert pipelines == [("intarget", 0), ("unibo", 1), ("unibo", 2)]


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_workers_stop_when_the_supervisor_is_killed(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """SIGKILL the supervisor (nothing forwards a stop): each worker sees its report pipe break and drains and exits
    by itself, rather than go on consuming as an orphan outside the pod's accounting."""
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url)], http_port=port, grace=GRACE)
    process = _process(tmp_path, tree)
    workers: list[int] = []
    try:
        process.start()
        await _ready(port)
        started = next(line for line in json_lines(process.output()) if line.get("event") == "workers started")
        workers += [int(pid) for pid in started["workers"].values()]
        assert all(_running(pid) for pid in workers)
        process.signal(signal.SIGKILL)
        await wait_for(lambda: not any(_running(pid) for pid in workers), GRACE + STOP_MARGIN, "the workers to exit")
    finally:
        process.stop()
        for pid in workers:  # only if the test failed: no orphan outlives it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    logs = json_lines(process.output())
    assert sorted(
        line["worker"] for line in logs if line.get("event") == "the supervisor is gone; stopping this worker"
    ) == [1, 2]


async def test_a_supervisor_that_fails_to_start_stops_its_workers(
    broker: EmbeddedBroker, topic: str, unibo: RunningSandbox, tmp_path: Path
) -> None:
    """Enable3's withdrawal callback cannot bind its port (taken): the supervisor fails while its workers start, and
    it stops them before exiting non-zero, instead of waiting for a stop that never comes."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        callback = {
            "secret": "callback-secret-123",
            "topic": f"{topic}.withdrawals",
            "listen": f"127.0.0.1:{taken.getsockname()[1]}",
        }
        enable3 = {
            "name": "enable3",
            "connector": "enable3",
            "base_url": unibo.url,
            "credentials": {"default": {"api_key": "enable3-key"}},
            "withdrawal_callback": callback,
        }
        tree = gateway_config(broker.bootstrap_servers, topic, [unibo_destination(unibo.url), enable3], grace=GRACE)
        process = _process(tmp_path, tree)
        try:
            process.start()
            code = await process.wait(GRACE + STOP_MARGIN + 30)
        finally:
            process.stop()
    assert code not in (0, None)
    logs = json_lines(process.output())
    started = next(line for line in logs if line.get("event") == "workers started")
    assert not any(_running(int(pid)) for pid in started["workers"].values())
    assert {line["failed_worker"] for line in logs if line.get("event") == "worker failed"} <= {1, 2}
