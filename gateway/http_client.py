"""HTTP towards vendors: one pooled session per destination, TLS, proxy, rate limit, and failures mapped once."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Mapping
from dataclasses import field
from urllib.parse import quote, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from yarl import URL

from gateway import __version__
from gateway.backoff import parse_retry_after
from gateway.config import DestinationConfig, ProxyConfig
from gateway.http1 import Http1Client, InvalidResponse, WireUrl
from gateway.immutable import immutable
from gateway.metrics import DestinationMetrics, observe_one
from gateway.outcomes import (
    TRANSPORT_FAILURE,
    FailureKind,
    Outcome,
    SendResult,
    TransportFailure,
    is_redirect,
    status_class,
)
from gateway.request_deadline import RequestDeadline

MAX_RESPONSE_BYTES = 1024 * 1024
"""A vendor's answer is read up to this size; the rest is dropped (an answer is a status and a short detail)."""
MAX_DETAIL = 200
USER_AGENT = f"event-gateway/{__version__}"

UNADDRESSABLE_SEGMENTS = frozenset({".", ".."})
"""Ids that cannot be one URL path segment: the HTTP client normalizes them away (`/user/../token` is `/token`)."""


def path_segment(value: str) -> str:
    """`value` percent-encoded as exactly one URL path segment; ValueError for `.` and `..`, which would address
    another resource once the URL is normalized."""
    if value in UNADDRESSABLE_SEGMENTS:
        raise ValueError(f"{value!r} cannot be a URL path segment")
    return quote(value, safe="")


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


@immutable
class HttpResponse:
    """A vendor's answer; status 0 with `failure` set when no answer came (timeout, reset, TLS, DNS)."""

    status: int
    body: bytes = b""
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: _NO_HEADERS)
    failure: TransportFailure | None = None
    truncated: bool = False  # the body was longer than MAX_RESPONSE_BYTES and holds only its start

    @property
    def text(self) -> str:
        """The body as text, for error details (truncated by the caller)."""
        return self.body.decode("utf-8", "replace")

    @classmethod
    def failed(cls, kind: FailureKind, cause: str = "") -> HttpResponse:
        """No answer came: status 0 and why."""
        return cls(TRANSPORT_FAILURE, failure=TransportFailure(kind, cause))

    @property
    def error(self) -> str:
        """The transport failure as text (`timeout`, `tls: SSLError`), or empty when an answer came."""
        return str(self.failure) if self.failure is not None else ""


class RateLimiter:
    """A token bucket: at most `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may go."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """The TLS setting for aiohttp: system trust (plus an optional CA bundle), or no verification when asked."""
    if not verify:
        return False
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _basic_auth(username: str, password: SecretStr | None) -> str:
    secret = password.get_secret_value() if password is not None else ""
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")


class HttpTransport:
    """Sends requests for one destination and never raises for a network failure: it reports status 0.

    Each request's timeout is the destination's `RequestDeadline`: `timeout`, or with `adaptive_timeout` (the default)
    a deadline from the recent 2xx response times, within `timeout`. `adaptive=False` keeps `timeout` for every
    request and leaves the destination's timeout gauge alone (the Enable3 ambassador: other endpoints, its own timeout).
    """

    def __init__(
        self, config: DestinationConfig, metrics: DestinationMetrics, *, pool_size: int, adaptive: bool = True
    ) -> None:
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        settings = config.adaptive_timeout
        self._deadline_timeout = self._timeout  # aiohttp's timeout for the current deadline, remade when it changes
        self.deadline = RequestDeadline(
            config.timeout,
            floor=settings.floor,
            factor=settings.factor,
            percentile=settings.percentile,
            window=settings.window,
            min_samples=settings.min_samples,
            enabled=adaptive and settings.enabled,
            on_change=metrics.request_timeout.set if adaptive else lambda seconds: None,
        )
        self._ssl = ssl_context(config.tls.verify, str(config.tls.ca_file) if config.tls.ca_file else None)
        self._pool_size = pool_size
        proxy = config.proxy if isinstance(config.proxy, ProxyConfig) else None
        self._proxy = proxy.url if proxy else None
        # aiohttp sends proxy_headers only on a CONNECT (https targets); a plain-http target carries the proxy's
        # credentials on the request itself.
        self._proxy_headers = (
            {"Proxy-Authorization": _basic_auth(proxy.username, proxy.password)} if proxy and proxy.username else None
        )
        self._limiter = RateLimiter(config.rate_limit) if config.rate_limit else None
        self._session: aiohttp.ClientSession | None = None
        # Direct requests take the lean client; through a proxy (CONNECT tunnels, proxy credentials) aiohttp's.
        self._direct = (
            Http1Client(self._ssl, pool_size=pool_size, cap=MAX_RESPONSE_BYTES, user_agent=USER_AGENT)
            if self._proxy is None
            else None
        )

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, raise_for_status=False)
        return self._session

    async def request(
        self,
        method: str,
        url: str | URL | WireUrl,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request; the answer or the failure, measured and counted. A string URL is normalized (re-quoted)
        by yarl, as aiohttp does; a yarl URL or a WireUrl goes as it is, so a caller that signs the URL builds it in
        its wire form (a WireUrl with no URL object made per request).
        Direct requests take the lean client (gateway/http1.py), proxied ones aiohttp's."""
        if self._limiter is not None:
            await self._limiter.acquire()
        deadline = self.deadline.current
        started = time.perf_counter()
        if self._direct is not None:
            result = await self._send_direct(self._direct, method, url, body, headers, deadline)
        else:
            result = await self._send_proxied(method, url, body, headers, deadline)
        elapsed = time.perf_counter() - started
        if 200 <= result.status < 300:
            self.deadline.answered(elapsed)
        observe_one(self._metrics.http_duration, elapsed)
        self._metrics.http_requests(status_class(result.status)).inc()
        return result

    async def _send_direct(
        self,
        client: Http1Client,
        method: str,
        url: str | URL | WireUrl,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        deadline: float,
    ) -> HttpResponse:
        try:
            answer = await client.request(method, url, body, headers, deadline)
        except TimeoutError:
            self._timed_out(deadline)
            return HttpResponse.failed(FailureKind.TIMEOUT)
        except ssl.SSLError as error:  # certificate verification failures among them
            return HttpResponse.failed(FailureKind.TLS, type(error).__name__)
        except OSError as error:  # refused, reset, unreachable, DNS, or closed before the whole answer came
            return HttpResponse.failed(FailureKind.CONNECTION, type(error).__name__)
        except (InvalidResponse, ValueError) as error:  # a malformed answer, or a URL or header that cannot be sent
            return HttpResponse.failed(FailureKind.CLIENT, type(error).__name__)
        return HttpResponse(answer.status, answer.body, answer.headers, truncated=answer.truncated)

    async def _send_proxied(
        self,
        method: str,
        url: str | URL | WireUrl,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        deadline: float,
    ) -> HttpResponse:
        session = self._ensure_session()
        if isinstance(url, WireUrl):
            url = url.url()
        if self._proxy_headers is not None and _plain_http(url):
            headers = {**(headers or {}), **self._proxy_headers}
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
                allow_redirects=False,  # a 3xx is the vendor's answer: see outcomes.is_redirect
                timeout=self._client_timeout(deadline),
            ) as response:
                length = response.content_length
                if length is not None and length <= MAX_RESPONSE_BYTES:
                    # The usual short answer of a stated length: read whole, 4 µs less a request than the capped loop
                    # (aiohttp's parser stops at Content-Length, so this reads no more than the cap either).
                    result = HttpResponse(response.status, await response.read(), response.headers)
                else:  # chunked, or longer than the cap
                    payload, truncated = await _read_capped(response.content, MAX_RESPONSE_BYTES)
                    result = HttpResponse(response.status, payload, response.headers, truncated=truncated)
        except TimeoutError:
            result = HttpResponse.failed(FailureKind.TIMEOUT)
            self._timed_out(deadline)
        except aiohttp.ClientSSLError as error:
            result = HttpResponse.failed(FailureKind.TLS, type(error).__name__)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
            result = HttpResponse.failed(FailureKind.CONNECTION, type(error).__name__)
        except aiohttp.ClientError as error:
            result = HttpResponse.failed(FailureKind.CLIENT, type(error).__name__)
        return result

    def _client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for `seconds`, remade only when the deadline changed (at most every few answers)."""
        if self._deadline_timeout.total != seconds:
            self._deadline_timeout = aiohttp.ClientTimeout(total=seconds)
        return self._deadline_timeout

    def _timed_out(self, deadline: float) -> None:
        if deadline < self.deadline.cap:
            self._metrics.timeouts_adaptive.inc()
        else:
            self._metrics.timeouts_cap.inc()
        self.deadline.timed_out(deadline)

    async def close(self) -> None:
        """Close the pooled connections (idempotent)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        if self._direct is not None:
            await self._direct.close()


def _plain_http(url: str | URL) -> bool:
    """Whether `url` is an http:// (not https://) URL."""
    return url.startswith("http://") if isinstance(url, str) else url.scheme == "http"


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """The body up to `cap` bytes and whether more was left unread (the connection is then not reused)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def safe_location(response: HttpResponse) -> str:
    """Where a redirect points, without user info, query or fragment (they may carry tokens)."""
    raw = response.headers.get("Location", "")
    if not raw:
        return "(no Location header)"
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable Location header)"
    origin = f"{parts.scheme}://{host}{port}" if parts.scheme or host else ""
    return (origin + parts.path)[:MAX_DETAIL] or "(an empty Location header)"


def unsettled_result(
    response: HttpResponse,
    outcome: Outcome,
    *,
    reason: str = "",
    delivered: frozenset[int] | None = None,
    duplicates: int = 0,
) -> SendResult:
    """The RETRY or HALT verdict on a vendor's answer, as every HTTP connector gives it: the transport failure's
    reason, the Retry-After hint, and for a redirect a detail naming where it pointed."""
    status = response.status
    if outcome is Outcome.RETRY:
        if response.failure is not None:
            reason = response.failure.kind.value
        return SendResult(
            Outcome.RETRY,
            status,
            reason=reason,
            detail=response.error or response.text[:MAX_DETAIL],
            retry_after=parse_retry_after(response.headers.get("Retry-After")) if status else None,
            delivered=delivered,
            duplicates=duplicates,
        )
    if is_redirect(status):
        detail = (
            f"the vendor answered {status} redirecting to {safe_location(response)}; redirects are never followed "
            "(the request and its key would go elsewhere): correct base_url (https:// rather than http://?)"
        )
    else:
        detail = response.text[:MAX_DETAIL]
    return SendResult(outcome, status, reason=reason, detail=detail, delivered=delivered, duplicates=duplicates)
