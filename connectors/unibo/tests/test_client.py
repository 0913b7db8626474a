"""Unibo response classification: the outcome table with Unibo's 422, 510 and 403."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from connectors.unibo.client import classify_response, rejected_items
from gateway.http_client import HttpResponse
from gateway.outcomes import FailureKind, Outcome, TransportFailure

TIMEOUT = TransportFailure(FailureKind.TIMEOUT)


def _response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, error: TransportFailure | None = None
) -> HttpResponse:
    return HttpResponse(status, body, CIMultiDictProxy(CIMultiDict(headers or {})), error)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (204, Outcome.DELIVERED),
        (200, Outcome.DELIVERED),
        (403, Outcome.HALT),
        (401, Outcome.HALT),
        (422, Outcome.REJECT),
        (400, Outcome.REJECT),
        (510, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (429, Outcome.RETRY),
        (0, Outcome.RETRY),
        (404, Outcome.HALT),
        (405, Outcome.HALT),
        (407, Outcome.HALT),
        (413, Outcome.REJECT),
    ],
    ids=str,
)
def test_outcome_table(status: int, outcome: Outcome) -> None:
    """Each Unibo status maps to the documented action."""
    assert classify_response(_response(status, error=TIMEOUT if status == 0 else None), 3).outcome is outcome


def test_422_names_the_bad_items_in_fastapi_shape() -> None:
    """A FastAPI-style 422 (with or without the "body" prefix) names exactly the bad items."""
    body = (
        b'{"detail": [{"loc": ["body", "items", 2, "data", "amount"], "msg": "Input should be a valid number"},'
        b' {"loc": ["items", 0, "data", "currency"], "msg": "Field required"}]}'
    )
    result = classify_response(_response(422, body), 5)
    assert result.rejected == frozenset({0, 2})
    assert "amount" in result.detail
    assert "currency" in result.detail


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"detail": "bad request"}',
        b'{"detail": [{"loc": ["body"], "msg": "x"}]}',
        b'{"detail": [{"loc": ["items", 99, "data"], "msg": "x"}]}',
        b"[]",
    ],
    ids=["text", "string-detail", "no-index", "index-out-of-range", "array"],
)
def test_422_without_usable_indexes_falls_back_to_splitting(body: bytes) -> None:
    """When the 422 body does not name items in range, the engine is told to split (rejected is None)."""
    rejected, detail = rejected_items(body, 5)
    assert rejected is None
    assert detail


def test_510_resends_the_batch_with_its_own_reason() -> None:
    """510 is a retry of the whole batch, counted as partial_store."""
    result = classify_response(_response(510, b'{"failed_unique_ids": ["a"]}'), 2)
    assert result.outcome is Outcome.RETRY
    assert result.reason == "partial_store"
    assert result.delivered is None


def test_retry_after_and_transport_reasons() -> None:
    """429 carries Retry-After; a transport failure carries its bounded reason."""
    assert classify_response(_response(429, headers={"Retry-After": "7"}), 1).retry_after == 7.0
    assert (
        classify_response(
            _response(0, error=TransportFailure(FailureKind.CONNECTION, "ServerDisconnectedError")), 1
        ).reason
        == "connection"
    )
    assert classify_response(_response(0, error=TIMEOUT), 1).reason == "timeout"
