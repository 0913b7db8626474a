"""The one retry helper: attempts earn a growing backoff, a retried call is logged and tried again until it works."""

from __future__ import annotations

import asyncio
import random

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.backoff import FullJitterBackoff
from gateway.retries import Attempts, retry


class _Ceiling(random.Random):
    """Jitter that always picks the ceiling, so the growth of the backoff shows."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Flaky:
    """Fails with `error` the first `failures` calls, then succeeds; counts the calls."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def _quick() -> FullJitterBackoff:
    return FullJitterBackoff(initial=0.001, maximum=0.001)


def test_attempts_back_off_more_each_failure_until_progress() -> None:
    """The delay ceiling doubles up to the maximum, a Retry-After wins, and a reset starts over."""
    attempts = Attempts(FullJitterBackoff(initial=0.5, maximum=4.0, rng=_Ceiling()))
    assert [attempts.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert attempts.count == 5
    assert 7.0 <= attempts.failed(retry_after=7.0) <= 7.0 * 1.2
    attempts.reset()
    assert (attempts.count, attempts.failed()) == (0, 0.5)


async def test_a_failing_call_is_retried_and_logged_until_it_works() -> None:
    """Two failures, two warnings with the caller's fields, the error's class and the attempt; then True."""
    call = Flaky(2, ConnectionError("secret-host:9092 refused"))
    with capture_logs() as logs:
        done = await retry(
            call,
            retry_on=ConnectionError,
            backoff=_quick(),
            log=structlog.get_logger("test"),
            message="unreachable, retrying",
            fields={"client": "producer"},
        )
    assert done and call.calls == 3
    assert [(line["event"], line["client"], line["error"], line["attempt"]) for line in logs] == [
        ("unreachable, retrying", "producer", "ConnectionError", 1),
        ("unreachable, retrying", "producer", "ConnectionError", 2),
    ]
    assert all("secret" not in str(line) for line in logs)


async def test_other_errors_and_give_up_errors_propagate_at_once() -> None:
    """An error it does not retry, or one it gives up on (a subclass of a retried one), is raised on the first call."""
    log = structlog.get_logger("test")
    refused = Flaky(5, ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await retry(refused, retry_on=ConnectionError, backoff=_quick(), log=log, message="m")
    too_large = Flaky(5, ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        await retry(
            too_large,
            retry_on=ConnectionError,
            give_up_on=(ConnectionRefusedError,),
            backoff=_quick(),
            log=log,
            message="m",
        )
    assert (refused.calls, too_large.calls) == (1, 1)


async def test_stopping_ends_the_retries_before_a_call_and_during_a_wait() -> None:
    """Asked to stop: no call at all when set before; when set during a (30 s) wait, False without waiting it out."""
    log = structlog.get_logger("test")
    stopping = asyncio.Event()
    stopping.set()
    never = Flaky(0, ConnectionError())
    assert (
        await retry(never, retry_on=ConnectionError, backoff=_quick(), log=log, message="m", stopping=stopping) is False
    )
    assert never.calls == 0
    stopping = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stopping.set)
    slow = FullJitterBackoff(initial=30.0, maximum=30.0, rng=_Ceiling())
    down = Flaky(100, ConnectionError())
    with capture_logs():
        stopped = await asyncio.wait_for(
            retry(down, retry_on=ConnectionError, backoff=slow, log=log, message="m", stopping=stopping), 20
        )
    assert stopped is False and down.calls == 1
