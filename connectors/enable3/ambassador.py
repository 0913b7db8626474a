"""Ambassador endpoints: the operator's app asks the gateway, which holds the key, for widget URLs, JWTs, balances."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping
from urllib.parse import urlencode

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from connectors.enable3.client import DEFAULT_BASE_URL
from connectors.enable3.config import AmbassadorSettings, Enable3Credentials
from gateway.destination import Destination
from gateway.http_client import HttpResponse, HttpTransport, path_segment, safe_location
from gateway.logs import destination_logger
from gateway.metrics import DestinationMetrics, Metrics
from gateway.outcomes import TRANSPORT_FAILURE, FailureKind, is_redirect, status_class

log = structlog.get_logger("connectors.enable3.ambassador")

# local endpoint -> (Enable3 path under /api/v1/integration/user/{id}, query parameters passed through)
ENDPOINTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "widget-url": ("widget", ("lang", "section", "entity", "referralCode")),
    "token": ("token", ()),
    "balance": ("balance", ()),
}
TRANSIENT = frozenset({TRANSPORT_FAILURE, 408, 425, 500, 502, 503, 504})
RETRY_DELAY = 0.1  # one quick retry: the caller is a user waiting for a widget to open
DEFAULT_BRAND = "default"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None, **extra: object) -> web.Response:
    body = orjson.dumps({"error": message, "status": status, **extra})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class Ambassador:
    """Serves `GET /enable3/<destination>/users/{operatorUserId}/{widget-url|token|balance}` for one destination."""

    def __init__(self, destination: Destination, settings: AmbassadorSettings, metrics: Metrics) -> None:
        self._destination = destination
        self._log = destination_logger("connectors.enable3.ambassador", destination.name)
        self._settings = settings
        self._metrics = metrics
        self._credentials: Mapping[str, Enable3Credentials] = destination.credentials
        self._base_url = destination.config.base_url or DEFAULT_BASE_URL
        self._transport: HttpTransport | None = None
        self.prefix = f"/enable3/{destination.name}/users"

    def routes(self) -> list[web.RouteDef]:
        """One GET route per endpoint."""
        return [web.get(f"{self.prefix}/{{user}}/{name}", self._handler(name)) for name in ENDPOINTS]

    async def start(self) -> None:
        """Open the pooled connections (same TLS and proxy as the pipeline: Enable3 allow-lists the egress IP)."""
        config = self._destination.config.model_copy(update={"timeout": self._settings.timeout, "rate_limit": None})
        metrics = DestinationMetrics(self._metrics, self._destination.name)
        self._transport = HttpTransport(config, metrics, pool_size=16, adaptive=False)

    async def stop(self) -> None:
        """Close the connections (idempotent)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    def _authorized(self, request: web.Request) -> bool:
        token = self._settings.token
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        presented = presented.strip()
        if token is None or scheme.lower() != "bearer" or not presented:
            return False
        # "replace": undecodable header bytes arrive as lone surrogates, which a strict encode would raise on (500).
        return hmac.compare_digest(presented.encode("utf-8", "replace"), token.get_secret_value().encode())

    def _handler(self, endpoint: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(endpoint, request)

        return handle

    async def _serve(self, endpoint: str, request: web.Request) -> web.Response:
        transport = self._transport
        if transport is None:
            return _error(503, "the gateway is starting or stopping")
        if not self._authorized(request):
            self._count(endpoint, "unauthorized")
            return _error(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        brand = request.query.get("brand", DEFAULT_BRAND)
        credentials = self._credentials.get(brand)
        if credentials is None:
            self._count(endpoint, "unknown_brand")
            return _error(404, f"no Enable3 credentials for brand {brand!r}")
        path, passed = ENDPOINTS[endpoint]
        params = {name: request.query[name] for name in passed if name in request.query}
        try:
            user = path_segment(request.match_info["user"])
        except ValueError:
            self._count(endpoint, "bad_request")
            return _error(400, "operatorUserId cannot be `.` or `..`")
        url = f"{self._base_url}/api/v1/integration/user/{user}/{path}"
        if params:
            url += "?" + urlencode(params)
        headers = {"X-API-KEY": credentials.api_key.get_secret_value(), "Accept": "application/json"}
        started = time.perf_counter()
        response = await transport.request("GET", url, headers=headers)
        if response.status in TRANSIENT:
            await asyncio.sleep(RETRY_DELAY)
            response = await transport.request("GET", url, headers=headers)
        elapsed = time.perf_counter() - started
        self._metrics.ambassador_request_duration.labels(self._destination.name, endpoint).observe(elapsed)
        self._count(endpoint, status_class(response.status))
        self._log.debug("ambassador", endpoint=endpoint, status=response.status)
        return _answer(response)

    def _count(self, endpoint: str, label: str) -> None:
        self._metrics.ambassador_requests.labels(self._destination.name, endpoint, label).inc()


def _answer(response: HttpResponse) -> web.Response:
    """Enable3's 2xx body as it is; its other statuses pass through with a small JSON error; no answer is 502/504."""
    status = response.status
    if is_redirect(status):
        location = safe_location(response)
        log.error("Enable3 redirected an ambassador request; redirects are never followed", location=location)
        return _error(502, "Enable3 redirected the request (check the destination's base_url)", location=location)
    if response.truncated:
        return _error(502, "Enable3's answer was too large")
    if 200 <= status < 300:
        content_type = response.headers.get("Content-Type", "application/json").split(";", 1)[0]
        # The body holds a token: no cache along the way may keep it.
        return web.Response(
            status=status, body=response.body, content_type=content_type, headers={"Cache-Control": "no-store"}
        )
    if status == TRANSPORT_FAILURE:
        kind = response.failure.kind if response.failure is not None else ""
        return _error(504 if kind == FailureKind.TIMEOUT else 502, "Enable3 did not answer", reason=kind)
    retry_after = response.headers.get("Retry-After")
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return _error(status, f"Enable3 answered {status}", headers)
