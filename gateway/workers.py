"""`gateway run --workers N`: one supervisor process and N worker processes that share the destinations' groups.

The supervisor runs the HTTP listener (/metrics merged over every process, /healthz, /readyz over every worker), the
connector extensions, and the pipelines of the destinations that have one (their client needs the extension's
`shared` part, e.g. InTarget's store). Each worker runs the other destinations' pipelines: every worker joins the same
consumer groups, so Kafka spreads their partitions across the workers. docs/scaling.md says when to use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import structlog
from prometheus_client import CollectorRegistry

from gateway import event_loop
from gateway.app import Gateway
from gateway.destination import Destination, ResolvedConfig
from gateway.extensions import ExtensionContext, extensions_of
from gateway.http_server import PipelineState, readiness
from gateway.multiprocess_metrics import exposition_registry, forget_process
from gateway.waits import wait_event

log = structlog.get_logger("gateway.workers")

STOP_MARGIN = 8.0
"""Seconds past shutdown.grace_period a worker has to commit, leave its groups and exit before it is killed (the
pod's terminationGracePeriodSeconds must cover grace_period plus this)."""
REPORT_INTERVAL = 0.5
"""A worker reports its readiness to the supervisor this often."""
SILENT_AFTER = 30.0
"""A worker that has not reported for this long (or since it started) is stuck: not ready, and /healthz fails."""

READY = "ready"


@dataclass(slots=True)
class ReportedState:
    """One destination's readiness as the workers report it, in the shape /readyz reads (a PipelineState)."""

    name: str
    state: str
    joined: bool = field(init=False)  # in every worker

    def __post_init__(self) -> None:
        self.joined = self.state == READY

    @property
    def halted(self) -> bool:
        """A tenant is halted in some worker."""
        return self.state == "halted"

    @property
    def kafka_problem(self) -> str | None:
        """Any other state (a Kafka problem, or a worker starting, silent or gone) is the reason."""
        return None if self.state in (READY, "joining", "halted") else self.state


def rate_share(destination: Destination, workers: int) -> Destination:
    """The destination with its `rate_limit` split evenly across the workers, so that together they stay within it."""
    rate = destination.config.rate_limit
    if rate is None or workers <= 1:
        return destination
    return dataclasses.replace(destination, config=destination.config.model_copy(update={"rate_limit": rate / workers}))


def worker_config(resolved: ResolvedConfig, workers: int) -> ResolvedConfig:
    """What one of `workers` workers runs from: every destination's `rate_limit` its share."""
    return dataclasses.replace(resolved, destinations=tuple(rate_share(d, workers) for d in resolved.destinations))


def spread_destinations(gateway: Gateway) -> list[str]:
    """The names of the gateway's destinations that can run in the workers (those without a connector extension),
    taken out of the gateway itself, which keeps the others beside their extensions."""
    contexts = [
        ExtensionContext(d, gateway.config.gateway.kafka, gateway.metrics, gateway.stopping)
        for d in gateway.destinations
    ]
    extended = extensions_of(contexts)  # built only to see which exist: their constructors open nothing
    spread = [d.name for d in gateway.destinations if d.name not in extended]
    gateway.destinations = [d for d in gateway.destinations if d.name in extended]
    return spread


@dataclass
class WorkerProcess:
    """One worker as the supervisor sees it."""

    index: int
    process: asyncio.subprocess.Process
    states: dict[str, str] = field(default_factory=dict)
    reported_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    reports: asyncio.Task[None] | None = None  # reads the worker's pipe until it closes

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def problem(self, now: float) -> str | None:
        """Why the worker cannot be counted on (it exited, or has been silent too long), or None."""
        if self.process.returncode is not None:
            return "worker_exited"
        if now - (self.reported_at if self.reported_at is not None else self.started_at) > SILENT_AFTER:
            return "worker_silent"
        return None

    def state_of(self, destination: str, now: float) -> str:
        """The worker's readiness for one destination."""
        return self.problem(now) or self.states.get(destination, "worker_starting")


class Supervisor:
    """Starts the workers, merges their readiness and metrics, forwards the stop and waits for every drain.

    A worker that exits while the gateway is not stopping stops the whole gateway (everything else drains), which
    then exits non-zero: in Kubernetes the pod restarts. Workers are not restarted one by one, so a crash is never
    hidden behind a restart loop inside a pod that looks healthy."""

    def __init__(self, config_path: str, count: int, metrics_dir: Path, destinations: Sequence[str]) -> None:
        self._config_path = config_path
        self._count = count
        self._metrics_dir = metrics_dir
        self.destinations = list(destinations)
        self.workers: list[WorkerProcess] = []
        self.failed = False

    # ---- what the listener shows -----------------------------------------------------------------------------

    def states(self) -> list[PipelineState]:
        """Each spread destination's readiness: ready only while every worker reports it ready."""
        now = time.monotonic()
        found: list[PipelineState] = []
        for name in self.destinations:
            states = [worker.state_of(name, now) for worker in self.workers] or ["worker_starting"]
            found.append(ReportedState(name, next((s for s in states if s != READY), READY)))
        return found

    def exposition(self, gateway: Gateway) -> CollectorRegistry:
        """Every process's metrics merged; this process's gateway_ready is set to the verdict at each scrape."""

        def update_ready() -> None:
            gateway.metrics.ready.set(1.0 if gateway.ready() else 0.0)

        return exposition_registry(self._metrics_dir, update_ready)

    def unresponsive(self) -> str | None:
        """The first worker's problem (stuck or gone): /healthz fails, as it would for one stuck process."""
        now = time.monotonic()
        return next((p for p in (w.problem(now) for w in self.workers) if p is not None), None)

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def run(self, gateway: Gateway) -> None:
        """Start the workers; when the gateway stops (or a worker dies, which stops it), stop them and wait for
        their drain, which runs beside the supervisor's own."""
        if not self.destinations:
            return
        grace = gateway.config.gateway.shutdown.grace_period
        watched: list[asyncio.Task[object]] = []
        try:
            for index in range(1, self._count + 1):
                self.workers.append(await self._spawn(index))
            pids = {str(w.index): w.pid for w in self.workers}
            log.info("workers started", workers=pids, destinations=self.destinations)
            watched = [asyncio.create_task(w.process.wait()) for w in self.workers]
            watched.append(asyncio.create_task(gateway.stopping.wait()))
            watched.append(asyncio.create_task(gateway.drained.wait()))  # the supervisor's own run failed
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if not gateway.stopping.is_set() and not gateway.drained.is_set():
                for worker in self.workers:
                    if worker.process.returncode is not None:
                        log.error(
                            "worker exited unexpectedly; stopping the gateway (exit status 1 when drained)",
                            failed_worker=worker.index,
                            pid=worker.pid,
                            exit_code=worker.process.returncode,
                        )
                self.failed = True
                gateway.stop()
        finally:
            for task in watched:
                task.cancel()
            await self._stop_workers(grace + STOP_MARGIN)

    async def _spawn(self, index: int) -> WorkerProcess:
        read_end, write_end = os.pipe()
        arguments = ["--workers", str(self._count), "--worker", str(index), "--status-fd", str(write_end)]
        for name in self.destinations:
            arguments += ["--destination", name]
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "run", "--config", self._config_path, *arguments, pass_fds=(write_end,)
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        worker = WorkerProcess(index, process)
        worker.reports = asyncio.create_task(self._read_reports(worker, read_end), name=f"worker-reports:{index}")
        return worker

    async def _read_reports(self, worker: WorkerProcess, read_end: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb", buffering=0)
        )
        try:
            while line := await reader.readline():
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                    worker.states = dict(orjson.loads(line)["destinations"])
                    worker.reported_at = time.monotonic()
        finally:
            transport.close()

    async def _stop_workers(self, limit: float) -> None:
        """SIGTERM every live worker, wait up to `limit` for all of them, kill the rest; any failure is recorded."""
        live = [w for w in self.workers if w.process.returncode is None]
        signalled: list[WorkerProcess] = []
        for worker in live:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
                signalled.append(worker)
        if live:
            log.info("waiting for the workers to drain", workers=[w.index for w in live], limit_s=limit)
            await asyncio.wait([asyncio.create_task(w.process.wait()) for w in live], timeout=limit)
        for worker in self.workers:
            if worker.process.returncode is None:
                log.error("worker did not stop in time; killing it", failed_worker=worker.index, limit_s=limit)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            code = worker.process.returncode
            # Ended by our SIGTERM: it came before the worker installed its handler, so it had consumed nothing.
            if code != 0 and not (code == -signal.SIGTERM and worker in signalled):
                self.failed = True
                log.error("worker failed", failed_worker=worker.index, exit_code=code)
            forget_process(worker.pid)
            if worker.reports is not None:
                worker.reports.cancel()
                await asyncio.gather(worker.reports, return_exceptions=True)


class WorkerReport:
    """A worker's side: its readiness written to the supervisor's pipe every REPORT_INTERVAL, and its own
    gateway_ready gauge kept to the same verdict. A pipe the supervisor no longer reads (it died) stops the worker."""

    def __init__(self, status_fd: int) -> None:
        self._fd = status_fd
        os.set_blocking(status_fd, False)

    def states(self) -> Sequence[PipelineState]:
        """A worker shows no one else's states."""
        return ()

    def exposition(self, gateway: Gateway) -> CollectorRegistry:
        """Unused: a worker serves no /metrics (the supervisor merges the files)."""
        return gateway.registry

    def unresponsive(self) -> str | None:
        """Unused: a worker serves no /healthz (its reports are its liveness)."""
        return None

    def report(self, gateway: Gateway) -> bool:
        """Send one report; False when the supervisor is gone."""
        ready, states = readiness(gateway.pipelines)
        gateway.metrics.ready.set(1.0 if ready else 0.0)
        try:
            os.write(self._fd, orjson.dumps({"ready": ready, "destinations": states}) + b"\n")
        except BlockingIOError:
            pass  # the supervisor is behind on reading: this report is dropped, the next one goes
        except OSError:
            return False
        return True

    async def run(self, gateway: Gateway) -> None:
        """Report from start-up (also while Kafka is unreachable) until the drain is over; if the supervisor is gone,
        stop the gateway."""
        while not gateway.drained.is_set():
            if not self.report(gateway):
                log.error("the supervisor is gone; stopping this worker")
                gateway.stop()
                return
            await wait_event(gateway.drained, REPORT_INTERVAL)


def run_supervisor(
    resolved: ResolvedConfig, config_path: str, selected: Sequence[str], count: int, metrics_dir: Path, loop: str
) -> int:
    """Run the supervisor process; its exit status (1 when a worker failed)."""

    async def main() -> bool:
        supervisor = Supervisor(config_path, count, metrics_dir, ())
        gateway = Gateway(resolved, selected, companion=supervisor)
        supervisor.destinations = spread_destinations(gateway)
        if not supervisor.destinations:
            log.warning("--workers has no effect: every destination runs beside its connector extension")
        log.info(
            "supervising",
            workers=count,
            in_workers=supervisor.destinations,
            in_supervisor=[d.name for d in gateway.destinations],
        )
        await gateway.run()
        return supervisor.failed

    try:
        failed = event_loop.run(main(), loop)
    finally:
        from gateway.multiprocess_metrics import remove_directory  # noqa: PLC0415

        remove_directory(metrics_dir)
    return 1 if failed else 0


def run_worker(
    resolved: ResolvedConfig, selected: Sequence[str], index: int, count: int, status_fd: int, loop: str
) -> int:
    """Run one worker process: the named destinations' pipelines, each `rate_limit` its share; no listener."""
    gateway = Gateway(worker_config(resolved, count), selected, companion=WorkerReport(status_fd), serve=False)
    event_loop.run(gateway.run(), loop)
    return 0
