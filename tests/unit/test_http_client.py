"""The vendor HTTP transport's pieces: the rate limiter and the TLS setting."""

from __future__ import annotations

import ssl
import time

from gateway.http_client import RateLimiter, ssl_context


async def test_rate_limiter_spaces_requests() -> None:
    """At 50 requests/s with a burst of one, eleven requests cannot all go in less than 0.2 s (a lower bound)."""
    limiter = RateLimiter(rate=50, burst=1)
    started = time.monotonic()
    for _ in range(11):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.19


async def test_rate_limiter_allows_the_burst_at_once() -> None:
    """A full bucket lets `burst` requests through without waiting for a refill."""
    limiter = RateLimiter(rate=0.001, burst=5)
    for _ in range(5):
        await limiter.acquire()
    assert limiter._tokens < 1


def test_tls_verification_is_on_unless_disabled() -> None:
    """The default context verifies certificates and host names; verify=False is the only way out."""
    context = ssl_context(verify=True, ca_file=None)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert ssl_context(verify=False, ca_file=None) is False
