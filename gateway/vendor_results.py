"""A vendor's HTTP answer as a connector's SendResult: the one helper every HTTP connector's client uses."""

from __future__ import annotations

from gateway.http_client import HttpResponse, unsettled_result
from gateway.outcomes import Outcome, SendResult

MAX_REJECT_DETAIL = 1000
"""A refusal's detail keeps this much of the vendor's answer: it goes to the dead letter (`gateway-error`)."""


def send_result(
    response: HttpResponse,
    outcome: Outcome,
    *,
    reason: str = "",
    detail: str | None = None,
    rejected: frozenset[int] | None = None,
    delivered: frozenset[int] | None = None,
    duplicates: int = 0,
) -> SendResult:
    """The result of a send whose answer the connector classified as `outcome`.

    DELIVERED settles the records; REJECT carries `detail` (else the start of the vendor's answer) and the records the
    vendor named, if it did; RETRY and HALT carry the transport failure's kind, Retry-After and, for a redirect, where
    it pointed (`http_client.unsettled_result`). `delivered` and `duplicates` describe a partial send's settled part.
    """
    status = response.status
    if outcome is Outcome.DELIVERED:
        return SendResult(Outcome.DELIVERED, status, delivered=delivered, duplicates=duplicates)
    if outcome is Outcome.REJECT:
        return SendResult(
            Outcome.REJECT,
            status,
            reason=reason,
            detail=response.text[:MAX_REJECT_DETAIL] if detail is None else detail,
            rejected=rejected,
            delivered=delivered,
            duplicates=duplicates,
        )
    return unsettled_result(response, outcome, reason=reason, delivered=delivered, duplicates=duplicates)
