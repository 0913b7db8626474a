"""Adaptive request timeouts: the latency window's percentile, the deadline rule, and the transport applying it."""

from __future__ import annotations

import asyncio
import math

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gateway.config import AdaptiveTimeoutConfig, DestinationConfig
from gateway.http_client import HttpTransport
from gateway.metrics import DestinationMetrics, Metrics
from gateway.request_deadline import REFRESH_EVERY, LatencyWindow, RequestDeadline


def test_the_window_percentile_is_the_nearest_rank_of_its_samples() -> None:
    """Samples 1..100 in any order: p99 is 99, p50 is 50, p100 the largest."""
    values = [float(v) for v in range(100, 0, -1)]
    for percentile, expected in ((99.0, 99.0), (50.0, 50.0), (100.0, 100.0)):
        window = LatencyWindow(100, percentile)
        for value in values:
            window.add(value, refresh=True)
        assert window.percentile == expected


def test_the_window_forgets_its_oldest_samples() -> None:
    """A full ring keeps only the last `size` samples: slow answers long past no longer count."""
    window = LatencyWindow(10, 100.0)
    for _ in range(10):
        window.add(5.0)
    for _ in range(10):
        window.add(0.1, refresh=True)
    assert len(window) == 10
    assert window.percentile == 0.1


def test_the_window_recomputes_every_few_samples_or_when_asked() -> None:
    """Between recomputations the percentile holds still (the hot path only stores the sample)."""
    window = LatencyWindow(1000, 100.0)
    assert window.add(1.0)  # the first sample gives a value at once
    recomputed = [window.add(2.0) for _ in range(REFRESH_EVERY)]
    assert recomputed == [False] * (REFRESH_EVERY - 1) + [True]
    assert window.percentile == 2.0
    assert not window.add(9.0)
    assert window.percentile == 2.0
    assert window.add(9.0, refresh=True) and window.percentile == 9.0


@given(
    size=st.integers(1, 12),
    percentile=st.sampled_from([1.0, 50.0, 90.0, 99.0, 100.0]),
    samples=st.lists(st.tuples(st.sampled_from([0.1, 0.2, 0.3, 1.0, 5.0]), st.booleans()), max_size=60),
)
def test_the_window_percentile_is_the_nearest_rank_of_its_last_samples(
    size: int, percentile: float, samples: list[tuple[float, bool]]
) -> None:
    """Whatever the order, repeats and refreshes: a refreshed percentile is the nearest rank of the last `size`
    samples, as a sort of them gives it (the window keeps its order by bisection, never sorting the ring)."""
    window = LatencyWindow(size, percentile)
    for index, (seconds, refresh) in enumerate(samples):
        if window.add(seconds, refresh=refresh):
            last = sorted(sample for sample, _ in samples[max(0, index + 1 - size) : index + 1])
            assert window.percentile == last[max(1, math.ceil(percentile / 100 * len(last))) - 1]


def test_window_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        LatencyWindow(0, 99.0)
    with pytest.raises(ValueError, match="percentile"):
        LatencyWindow(10, 0.0)


def _deadline(**overrides: float) -> tuple[RequestDeadline, list[float]]:
    reported: list[float] = []
    settings: dict[str, float] = {"floor": 2.0, "factor": 3.0, "percentile": 99.0, "window": 100, "min_samples": 20}
    settings.update(overrides)
    deadline = RequestDeadline(
        10.0,
        floor=settings["floor"],
        factor=settings["factor"],
        percentile=settings["percentile"],
        window=int(settings["window"]),
        min_samples=int(settings["min_samples"]),
        on_change=reported.append,
    )
    return deadline, reported


def test_the_cap_applies_until_enough_answers_were_seen() -> None:
    """With fewer than min_samples answers the deadline is the configured timeout, however fast they were."""
    deadline, reported = _deadline()
    for _ in range(19):
        deadline.answered(0.01)
    assert deadline.current == 10.0
    assert reported == [10.0]
    deadline.answered(0.01)
    assert deadline.current == 2.0  # 20 answers: adapted, to the floor
    assert reported == [10.0, 2.0]


def test_the_deadline_is_factor_times_the_percentile_within_floor_and_cap() -> None:
    """Fast vendor: the floor. Slower: factor x p99. Very slow: the cap, never more."""
    for answer, expected in ((0.05, 2.0), (1.0, 3.0), (2.5, 7.5), (6.0, 10.0)):
        deadline, _ = _deadline()
        for _ in range(20):
            deadline.answered(answer)
        assert deadline.current == pytest.approx(expected)


def test_an_occasional_slow_answer_does_not_move_the_deadline() -> None:
    """One slow answer among a hundred fast ones is beyond the 99th percentile: the deadline stays at the floor."""
    deadline, _ = _deadline()
    for index in range(100):
        deadline.answered(1.9 if index == 50 else 0.02)
    assert deadline.current == 2.0


def test_timeouts_at_the_adaptive_deadline_lift_it_until_the_cap() -> None:
    """A vendor that became slower than the deadline for every request: each cut request counts as a sample at
    the deadline, so the deadline grows by `factor` until the answers fit again (never past the cap)."""
    deadline, reported = _deadline(window=20, min_samples=20)
    for _ in range(20):
        deadline.answered(0.01)
    assert deadline.current == 2.0
    deadline.timed_out(2.0)
    assert deadline.current == 6.0  # p99 of 20 samples is the largest: the cut request
    deadline.timed_out(6.0)
    assert deadline.current == 10.0
    deadline.timed_out(10.0)  # cut by the cap: not an adaptive deadline, nothing to learn
    assert reported == [10.0, 2.0, 6.0, 10.0]


def test_a_disabled_deadline_is_always_the_cap() -> None:
    deadline = RequestDeadline(10.0, floor=2.0, factor=3.0, percentile=99.0, window=20, min_samples=1, enabled=False)
    for _ in range(50):
        deadline.answered(0.01)
    deadline.timed_out(10.0)
    assert deadline.current == 10.0


def test_adaptive_timeout_settings_are_checked() -> None:
    """Durations take units; min_samples cannot exceed the window."""
    settings = AdaptiveTimeoutConfig.model_validate({"floor": "1500ms", "window": 200, "min_samples": 50})
    assert settings.floor == 1.5
    with pytest.raises(ValueError, match="min_samples"):
        AdaptiveTimeoutConfig.model_validate({"window": 50, "min_samples": 100})
    assert DestinationConfig(name="d", connector="unibo").adaptive_timeout.enabled


async def test_the_transport_cuts_a_hung_request_by_the_cap_then_by_the_adaptive_deadline() -> None:
    """A vendor that never answers `/hang`: before min_samples answers, the request waits for `timeout` (counted as a
    `cap` timeout); after them, it is cut by the adaptive deadline (counted as `adaptive`), and the gauge shows it."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/hang":
            await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    registry = CollectorRegistry()
    config = DestinationConfig(
        name="d",
        connector="unibo",
        timeout=1.0,
        adaptive_timeout={"floor": 0.3, "window": 20, "min_samples": 5},
    )
    transport = HttpTransport(config, DestinationMetrics(Metrics(registry), "d"), pool_size=4)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"destination": "d", **labels})

    try:
        assert value("gateway_http_request_timeout_seconds") == 1.0
        for _ in range(4):
            assert (await transport.request("POST", f"{url}/fast")).status == 204
        hung = await transport.request("POST", f"{url}/hang")
        assert (hung.status, hung.error) == (0, "timeout")
        assert value("gateway_http_timeouts_total", deadline="cap") == 1
        assert value("gateway_http_timeouts_total", deadline="adaptive") == 0
        assert (await transport.request("POST", f"{url}/fast")).status == 204  # the fifth answer
        assert transport.deadline.current == 0.3
        assert value("gateway_http_request_timeout_seconds") == 0.3
        hung = await transport.request("POST", f"{url}/hang")
        assert (hung.status, hung.error) == (0, "timeout")
        assert value("gateway_http_timeouts_total", deadline="adaptive") == 1
        assert value("gateway_http_timeouts_total", deadline="cap") == 1
    finally:
        release.set()
        await transport.close()
        await runner.cleanup()
