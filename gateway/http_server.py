"""The gateway's own HTTP listener: /metrics for Prometheus, /healthz for liveness, /readyz for readiness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.listener import Listener, ListenerLimits, ListenerTls


class PipelineState(Protocol):
    """What readiness looks at."""

    name: str
    joined: bool

    @property
    def halted(self) -> bool: ...

    @property
    def kafka_problem(self) -> str | None: ...


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def readiness(pipelines: Sequence[PipelineState]) -> tuple[bool, dict[str, str]]:
    """Ready when every pipeline joined its group, reads from Kafka and none is halted; also each one's state."""
    states = {p.name: _state(p) for p in pipelines}
    return bool(states) and all(state == "ready" for state in states.values()), states


def _state(pipeline: PipelineState) -> str:
    if pipeline.halted:
        return "halted"
    problem = pipeline.kafka_problem
    if problem is not None:
        return problem
    return "ready" if pipeline.joined else "joining"


def build_app(
    registry: CollectorRegistry,
    pipelines: Callable[[], Sequence[PipelineState]],
    unresponsive: Callable[[], str | None] = lambda: None,
) -> web.Application:
    """The application; `pipelines` is called per request so readiness reflects the current state. `unresponsive`
    names what fails liveness beside this process's own event loop (a worker of `--workers N`), or None."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        problem = unresponsive()
        return _json({"status": "ok"}) if problem is None else _json({"status": problem}, 503)

    async def readyz(_: web.Request) -> web.Response:
        ready, states = readiness(pipelines())
        return _json({"status": "ready" if ready else "not_ready", "destinations": states}, 200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    """Runs an aiohttp application on host:port behind the listener limits (and TLS when given); `port` 0 picks a
    free one (see `.port` after start)."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        limits: ListenerLimits | None = None,
        tls: ListenerTls | None = None,
    ) -> None:
        self._listener = Listener(app, host, port, limits or ListenerLimits(), tls)
        self.host = host
        self.port = port

    async def __aenter__(self) -> HttpServer:
        await self._listener.start()
        self.port = self._listener.port
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._listener.stop()

    @property
    def url(self) -> str:
        """Base URL."""
        return self._listener.url
