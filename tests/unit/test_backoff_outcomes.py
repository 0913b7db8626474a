"""Unit tests for backoff delays, Retry-After parsing and the outcome table."""

from __future__ import annotations

import random

import pytest

from gateway.backoff import RETRY_AFTER_JITTER, FullJitterBackoff, parse_retry_after
from gateway.outcomes import Outcome, classify, retry_reason, status_class


def test_full_jitter_stays_within_exponential_ceiling() -> None:
    """Each delay lies in [0, min(max, initial * 2**attempt)]."""
    backoff = FullJitterBackoff(initial=0.1, maximum=5.0, rng=random.Random(7))
    for attempt in range(40):
        ceiling = min(5.0, 0.1 * 2**attempt)
        for _ in range(20):
            assert 0.0 <= backoff.delay(attempt) <= ceiling


def test_full_jitter_spreads_delays() -> None:
    """Delays are jittered, not constant, so a fleet does not retry in lockstep."""
    backoff = FullJitterBackoff(initial=1.0, maximum=10.0, rng=random.Random(1))
    assert len({round(backoff.delay(5), 6) for _ in range(50)}) > 40


def test_retry_after_wins_but_is_capped() -> None:
    """A vendor's Retry-After is honoured (plus at most RETRY_AFTER_JITTER of it), up to the cap."""
    backoff = FullJitterBackoff(initial=0.1, maximum=1.0, retry_after_cap=60.0)
    assert 7.0 <= backoff.delay(0, retry_after=7.0) <= 7.0 * (1 + RETRY_AFTER_JITTER)
    assert 60.0 <= backoff.delay(3, retry_after=3600.0) <= 60.0 * (1 + RETRY_AFTER_JITTER)


@pytest.mark.parametrize("header", ["0", "0.0", "Wed, 21 Oct 2015 07:28:10 GMT"], ids=["zero", "zero-float", "past"])
def test_retry_after_zero_or_past_never_gives_zero(header: str) -> None:
    """`Retry-After: 0` and an HTTP date in the past (clock skew) wait at least `initial`, never 0 (a hot loop)."""
    backoff = FullJitterBackoff(initial=0.2, maximum=5.0, rng=random.Random(3))
    retry_after = parse_retry_after(header)
    assert retry_after == 0.0
    delays = [backoff.delay(attempt, retry_after) for attempt in range(50)]
    assert min(delays) >= 0.2


def test_retry_after_zero_cap_still_has_the_floor() -> None:
    """A cap of 0 (Retry-After switched off) cannot make a zero delay either."""
    backoff = FullJitterBackoff(initial=0.5, maximum=5.0, retry_after_cap=0.0)
    assert backoff.delay(0, retry_after=30.0) >= 0.5


def test_retry_after_is_jittered() -> None:
    """Lanes told the same Retry-After do not all come back at the same instant."""
    backoff = FullJitterBackoff(initial=0.1, maximum=1.0, rng=random.Random(11))
    assert len({round(backoff.delay(0, retry_after=1.0), 6) for _ in range(50)}) > 40


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """There is no retry limit, so attempt numbers grow without bound and must stay safe."""
    assert FullJitterBackoff(maximum=2.0).delay(10_000) <= 2.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), ("0", 0.0), (" 2.5 ", 2.5), ("-1", None), ("soon", None), ("", None), (None, None)],
    ids=["seconds", "zero", "fraction-spaces", "negative", "garbage", "empty", "absent"],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Retry-After delta-seconds parse; anything unusable is ignored."""
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    """Retry-After as an HTTP date becomes the seconds left until then."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (0, Outcome.RETRY),
        (408, Outcome.RETRY),
        (425, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
        (401, Outcome.HALT),
        (403, Outcome.HALT),
        (407, Outcome.HALT),
        (400, Outcome.REJECT),
        (404, Outcome.REJECT),
        (422, Outcome.REJECT),
        (301, Outcome.HALT),
        (302, Outcome.HALT),
        (307, Outcome.HALT),
        (308, Outcome.HALT),
        (101, Outcome.RETRY),
    ],
    ids=str,
)
def test_default_outcome_table(status: int, outcome: Outcome) -> None:
    """The default table classifies every status class."""
    assert classify(status) is outcome


def test_connector_overrides_take_precedence() -> None:
    """A connector can reclassify a status (Enable3 409 delivered, Unibo 510 retry)."""
    assert classify(409, {409: Outcome.DELIVERED}) is Outcome.DELIVERED
    assert classify(510, {510: Outcome.RETRY}) is Outcome.RETRY
    assert classify(409) is Outcome.REJECT


def test_labels_are_bounded() -> None:
    """Status classes and retry reasons come from small fixed sets."""
    assert status_class(0) == "error"
    assert status_class(503) == "5xx"
    assert retry_reason(0, "timeout") == "timeout"
    assert retry_reason(429) == "rate_limited"
    assert retry_reason(503) == "http_503"
    assert retry_reason(507) == "http_5xx"
