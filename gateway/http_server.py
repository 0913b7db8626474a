"""The gateway's own HTTP listener: /metrics for Prometheus, /healthz for liveness, /readyz for readiness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


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


def build_app(registry: CollectorRegistry, pipelines: Callable[[], Sequence[PipelineState]]) -> web.Application:
    """The application; `pipelines` is called per request so readiness reflects the current state."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, states = readiness(pipelines())
        return _json({"status": "ready" if ready else "not_ready", "destinations": states}, 200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    """Runs an aiohttp application on host:port; `port` 0 picks a free one (see `.port` after start)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self.host = host
        self.port = port

    async def __aenter__(self) -> HttpServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{self.host}:{self.port}"
