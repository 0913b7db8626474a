"""The composition root: builds every part in order, runs the pipelines, and shuts down in reverse order."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.commits import EncodingBudget
from gateway.config import GatewayConfig
from gateway.decode_cache import DecodeCache
from gateway.destination import ResolvedConfig
from gateway.dlq import DeadLetterWriter
from gateway.extensions import Extension, ExtensionContext, extensions_of
from gateway.http_server import HttpServer, PipelineState, build_app, readiness
from gateway.kafka_clients import dead_letter_producer, start_with_retry, stop_within
from gateway.logs import scrubber
from gateway.memory import release_forever, tune_malloc
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline

log = structlog.get_logger("gateway.app")


YOUNG_PER_PIPELINE = 200_000
"""The young generation's threshold for each pipeline of the process (see tune_garbage_collector)."""


def tune_garbage_collector(pipelines: int = 1) -> None:
    """Collect less often: the hot path allocates a few objects per event, and with tens of thousands of records in
    flight the default thresholds (700 allocations) spend a fifth of the consume path in the collector
    (bench/ingest_path.py: 26.2 -> 23.0 us per event). Start-up objects are frozen out of every collection.
    A young collection walks every record in flight (four objects each), and finds no garbage there: at 50,000 a
    200,000-event Unibo drain spent 130-170 ms of its 3 s of CPU in them, at 200,000 none, with the peak RSS of a
    1M backlog with a brand parked unchanged (143 MiB) and p99 at 2,000 events/s too (559 ms). Each pipeline has its
    own in-flight bound, so the threshold grows with their number: at 200,000 for three, one young collection of
    61-107 ms came as three destinations filled their bounds at the start of each drain. The hot path makes no
    reference cycles; gateway/memory.py collects those of rarer paths every 10 s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_PER_PIPELINE * max(1, pipelines), 20, 20)


def _shared(extensions: dict[str, Extension], name: str) -> object | None:
    extension = extensions.get(name)
    return extension.shared if extension is not None else None


class Companion(Protocol):
    """Runs beside the pipelines of a `gateway run --workers N` process (gateway/workers.py): the supervisor of the
    worker processes, or a worker's reports to its supervisor. It owns the gateway_ready gauge in that mode."""

    def states(self) -> Sequence[PipelineState]:
        """Readiness of the pipelines that run elsewhere (the workers'), beside this process's own."""
        ...

    def exposition(self, gateway: Gateway) -> CollectorRegistry:
        """The registry /metrics serves."""
        ...

    def unresponsive(self) -> str | None:
        """What fails /healthz beside this process (a worker stuck or gone), or None."""
        ...

    async def run(self, gateway: Gateway) -> None:
        """Run from start-up until the gateway has drained (`gateway.drained`); may call `gateway.stop()`."""
        ...


class Gateway:
    """Everything one `gateway run` owns."""

    def __init__(
        self,
        config: ResolvedConfig,
        destinations: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        *,
        companion: Companion | None = None,
        serve: bool = True,
    ):
        """`serve` False (a worker process) runs neither the HTTP listener nor the connector extensions."""
        self.config = config
        selected = set(destinations)
        self.destinations = [d for d in config.destinations if not selected or d.name in selected]
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.pipelines: list[Pipeline] = []
        self.decodes: DecodeCache | None = None  # shared by the pipelines when there are several
        self.stopping = asyncio.Event()
        self.drained = asyncio.Event()  # under a companion: the pipelines are done (or never started)
        self.http: HttpServer | None = None
        self.companion = companion
        self.serve = serve
        if companion is None:
            self.metrics.ready.set_function(lambda: 1.0 if self.ready() else 0.0)
        scrubber.register(config.secrets())

    def states(self) -> list[PipelineState]:
        """What readiness looks at: this process's pipelines and, under a supervisor, its workers'."""
        return [*self.pipelines, *(self.companion.states() if self.companion is not None else ())]

    def ready(self) -> bool:
        """/readyz's verdict."""
        return readiness(self.states())[0]

    def stop(self) -> None:
        """Begin a graceful shutdown (signal handlers call this)."""
        if not self.stopping.is_set():
            log.info("shutdown requested", grace_s=self.config.gateway.shutdown.grace_period)
            self.stopping.set()

    async def run(self, install_signals: bool = True) -> None:
        """Run until stopped; returns after the drain, with offsets committed."""
        tune_garbage_collector(len(self.destinations))
        tune_malloc()
        gateway = self.config.gateway
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        log.info(
            "starting",
            version=__version__,
            destinations=[d.name for d in self.destinations],
            event_loop=type(loop).__module__.partition(".")[0],
        )
        try:
            await self._run(gateway)
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        log.info("stopped")

    async def _run(self, gateway: GatewayConfig) -> None:
        async with AsyncExitStack() as stack:
            extensions = await self._serve(stack, gateway) if self.serve else {}
            if self.companion is not None:
                self._start_companion(stack, self.companion)
            producer = dead_letter_producer(gateway.kafka)
            if not await start_with_retry("dlq-producer", producer.start, self.stopping):
                await producer.stop()
                return
            stack.push_async_callback(stop_within, "dlq-producer", producer.stop)
            dead_letters = DeadLetterWriter(producer, gateway.kafka.dlq_topic)
            for name, extension in extensions.items():
                stack.push_async_callback(extension.stop)  # before start: a start that fails half-way is undone
                await extension.start()
                log.info("extension started", destination=name)
            encoding = EncodingBudget()  # the pipelines hold the share of time for commit metadata together
            # Destinations reading in step decode each record once between them (gateway/decode_cache.py).
            self.decodes = DecodeCache() if len(self.destinations) > 1 else None
            self.pipelines = [
                Pipeline(
                    d, gateway.kafka, dead_letters, self.metrics, _shared(extensions, d.name), encoding, self.decodes
                )
                for d in self.destinations
            ]
            releasing = asyncio.create_task(release_forever(), name="memory-release")
            stack.callback(releasing.cancel)
            async with asyncio.TaskGroup() as group:
                for pipeline in self.pipelines:
                    group.create_task(pipeline.run(self.stopping, gateway.shutdown.grace_period))
            await self.stopping.wait()  # a supervisor whose pipelines all run in its workers runs until stopped

    async def _serve(self, stack: AsyncExitStack, gateway: GatewayConfig) -> dict[str, Extension]:
        """Start the HTTP listener with the extensions' routes; the extensions, not yet started."""
        # The probes come up first: liveness holds and readiness says "not ready" while Kafka is unreachable.
        companion = self.companion
        registry = companion.exposition(self) if companion is not None else self.registry
        app = build_app(registry, self.states, companion.unresponsive if companion is not None else lambda: None)
        contexts = [ExtensionContext(d, gateway.kafka, self.metrics, self.stopping) for d in self.destinations]
        extensions = extensions_of(contexts)
        for extension in extensions.values():
            app.router.add_routes(extension.routes)
        self.http = await stack.enter_async_context(
            HttpServer(app, gateway.http.host, gateway.http.port, gateway.http.limits, gateway.http.tls)
        )
        log.info("http listening", url=self.http.url)
        return extensions

    def _start_companion(self, stack: AsyncExitStack, companion: Companion) -> None:
        """Run the companion from now on; on the way out it is awaited last (the supervisor's wait for its workers
        is part of the drain), after `drained` tells it the pipelines are done. If it fails, the gateway stops."""
        task = asyncio.create_task(companion.run(self), name="companion")

        def ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("the worker companion failed; stopping", exc_info=task.exception())
                self.stop()

        task.add_done_callback(ended)

        async def finish() -> None:
            await task

        stack.push_async_callback(finish)
        stack.callback(self.drained.set)
