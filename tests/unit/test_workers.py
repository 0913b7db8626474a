"""`gateway run --workers N` in parts: the rate split, merged metrics, merged readiness and a worker's reports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.app import Gateway
from gateway.binding import parse
from gateway.http_server import HttpServer, build_app, readiness
from gateway.workers import SILENT_AFTER, Supervisor, WorkerProcess, WorkerReport, rate_share, worker_config
from tests.unit.test_readiness import FakePipeline


def _tree(**unibo: Any) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
        "destinations": [
            {
                "name": "unibo",
                "connector": "unibo",
                "base_url": "http://127.0.0.1:1",
                "credentials": {"default": {"api_key": "k"}},
                **unibo,
            }
        ],
    }


def test_each_worker_gets_an_even_share_of_the_rate_limit() -> None:
    """N workers at rate_limit/N each send at most rate_limit together; no limit and one worker stay as they are."""
    resolved = parse(_tree(rate_limit=90, timeout=3), env={})
    limited = resolved.destinations[0]
    shared = worker_config(resolved, 3).destinations[0]
    assert shared.config.rate_limit == 30
    assert (shared.config.timeout, shared.name, shared.batch) == (3, "unibo", limited.batch)
    assert limited.config.rate_limit == 90  # the original is untouched
    assert rate_share(limited, 1) is limited
    unlimited = parse(_tree(), env={}).destinations[0]
    assert rate_share(unlimited, 4).config.rate_limit is None


# ---- merged metrics ----------------------------------------------------------------------------------------------

WORKER = """
import sys
from prometheus_client import CollectorRegistry
from gateway.metrics import DestinationMetrics, Metrics

role = sys.argv[1]
metrics = DestinationMetrics(Metrics(CollectorRegistry()), "unibo")
metrics.consumed.inc(100 if role == "a" else 50)
metrics.in_flight.set(7 if role == "a" else 5)
metrics.metrics.ready.set(1 if role == "a" else 0)
metrics.up.set(1 if role == "a" else 0)
metrics.tenant_halted("default", role == "b")
if role == "a":  # owned partition 0 until a rebalance moved it to b
    metrics.lag("t", 0, 500)
    metrics.forget_partition("t", 0)
    metrics.lag("t", 1, 3)
else:
    metrics.lag("t", 0, 40)
"""


def _merged(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    for role in ("a", "b"):
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        subprocess.run([sys.executable, "-W", "error", "-c", WORKER, role], env=env, check=True, timeout=60)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in MultiProcessCollector(None, str(directory)).collect()  # type: ignore[no-untyped-call]
        for sample in family.samples
    }


def test_metrics_of_two_workers_merge_into_the_single_process_series(tmp_path: Path) -> None:
    """Counters and in-flight events add up; up and ready take the worst; a tenant halted anywhere shows halted; a
    partition moved between workers counts only its new owner's lag; no series gains a per-process label."""
    merged = _merged(tmp_path)
    unibo = (("destination", "unibo"),)
    assert merged[("gateway_events_consumed_total", unibo)] == 150
    assert merged[("gateway_in_flight_events", unibo)] == 12
    assert merged[("gateway_ready", ())] == 0
    assert merged[("gateway_destination_up", unibo)] == 0
    assert merged[("gateway_tenant_halted", (("destination", "unibo"), ("tenant", "default")))] == 1
    lag = {
        dict(labels)["partition"]: value for (name, labels), value in merged.items() if name == "gateway_consumer_lag"
    }
    assert lag == {"0": 40, "1": 3}  # not 540: the previous owner's last value is gone
    assert all("pid" not in dict(labels) for _, labels in merged)


# ---- merged readiness ---------------------------------------------------------------------------------------------


@dataclass
class FakeProcess:
    """What the supervisor reads of a worker process."""

    pid: int
    returncode: int | None = None


def _worker(
    index: int, states: dict[str, str] | None, returncode: int | None = None, age: float = 0.0
) -> WorkerProcess:
    worker = WorkerProcess(index, cast(Any, FakeProcess(1000 + index, returncode)))
    if states is not None:
        worker.states = states
        worker.reported_at = time.monotonic() - age
    return worker


def _verdict(*workers: WorkerProcess) -> tuple[bool, dict[str, str]]:
    supervisor = Supervisor("gateway.yaml", len(workers), Path("/nonexistent"), ["unibo", "userwise"])
    supervisor.workers = list(workers)
    return readiness([FakePipeline("intarget"), *supervisor.states()])


def test_readiness_is_ready_only_while_every_worker_reports_every_destination_ready() -> None:
    """Each destination's state is the first worker's that is not ready; a worker that has not reported, stopped
    reporting or exited is named; the supervisor's own pipelines count too."""
    ready = {"unibo": "ready", "userwise": "ready"}
    everything = {"intarget": "ready", "unibo": "ready", "userwise": "ready"}
    assert _verdict(_worker(1, ready), _worker(2, ready)) == (True, everything)
    assert _verdict() == (False, {**everything, "unibo": "worker_starting", "userwise": "worker_starting"})
    assert _verdict(_worker(1, ready), _worker(2, None)) == (
        False,
        {**everything, "unibo": "worker_starting", "userwise": "worker_starting"},
    )
    halted = {"unibo": "halted", "userwise": "ready"}
    assert _verdict(_worker(1, ready), _worker(2, halted)) == (False, {**everything, "unibo": "halted"})
    joining = {"unibo": "joining", "userwise": "consumer_error"}
    assert _verdict(_worker(1, joining), _worker(2, ready)) == (
        False,
        {**everything, "unibo": "joining", "userwise": "consumer_error"},
    )
    assert _verdict(_worker(1, ready), _worker(2, ready, returncode=-9)) == (
        False,
        {**everything, "unibo": "worker_exited", "userwise": "worker_exited"},
    )
    assert _verdict(_worker(1, ready), _worker(2, ready, age=SILENT_AFTER + 1))[1]["unibo"] == "worker_silent"


def test_liveness_fails_when_a_worker_is_stuck_or_gone() -> None:
    """/healthz's verdict beside the supervisor's own loop: a worker that never reported within SILENT_AFTER of its
    start, or stopped reporting, is stuck; one that exited is gone; a worker still starting up is fine."""
    supervisor = Supervisor("gateway.yaml", 2, Path("/nonexistent"), ["unibo"])
    starting = _worker(1, None)
    supervisor.workers = [starting, _worker(2, {"unibo": "joining"})]
    assert supervisor.unresponsive() is None
    starting.started_at -= SILENT_AFTER + 1
    assert supervisor.unresponsive() == "worker_silent"
    supervisor.workers = [_worker(1, {}), _worker(2, {}, age=SILENT_AFTER + 1)]
    assert supervisor.unresponsive() == "worker_silent"
    supervisor.workers = [_worker(1, {}), _worker(2, {}, returncode=1)]
    assert supervisor.unresponsive() == "worker_exited"


async def test_healthz_answers_503_naming_the_problem() -> None:
    """The listener's /healthz follows `unresponsive`: 200 while it names nothing, 503 with its name otherwise."""
    problem: list[str | None] = [None]
    app = build_app(CollectorRegistry(), list, lambda: problem[0])
    async with HttpServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/healthz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        problem[0] = "worker_silent"
        async with session.get(f"{server.url}/healthz") as response:
            assert (response.status, await response.json()) == (503, {"status": "worker_silent"})


# ---- a worker's reports ---------------------------------------------------------------------------------------------


async def test_a_worker_reports_its_readiness_and_stops_when_the_supervisor_is_gone() -> None:
    """Each report is one JSON line with the worker's states, and the worker's gateway_ready follows it; once the
    supervisor no longer reads the pipe, the worker stops itself (it would otherwise consume as an orphan)."""
    read_end, write_end = os.pipe()
    report = WorkerReport(write_end)
    gateway = Gateway(parse(_tree(), env={}), companion=report, serve=False)
    pipelines = [FakePipeline("unibo", joined=False)]
    gateway.pipelines = cast(Any, pipelines)
    assert report.report(gateway)
    pipelines[0].joined = True
    assert report.report(gateway)
    lines = os.read(read_end, 4096).splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"ready": False, "destinations": {"unibo": "joining"}},
        {"ready": True, "destinations": {"unibo": "ready"}},
    ]
    assert gateway.registry.get_sample_value("gateway_ready") == 1.0
    os.close(read_end)
    await report.run(gateway)  # returns: the pipe is broken
    assert gateway.stopping.is_set()
    os.close(write_end)
