"""The closed set of delivery outcomes and the table that classifies a vendor response into one."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Outcome(enum.Enum):
    """What the delivery engine does with a vendor's answer."""

    DELIVERED = "delivered"  # the vendor has the records: settle them
    RETRY = "retry"  # transient: send the same records again after a backoff, with no count limit
    REJECT = "reject"  # permanent for some records: dead-letter those (split the batch to find them)
    HALT = "halt"  # credentials or allow-list: stop the tenant, keep the records, probe slowly


# Transport failures are reported with status 0, so one table covers the network and HTTP.
TRANSPORT_FAILURE = 0

DEFAULT_OUTCOMES: Mapping[int, Outcome] = {
    TRANSPORT_FAILURE: Outcome.RETRY,
    401: Outcome.HALT,
    403: Outcome.HALT,
    407: Outcome.HALT,  # the egress proxy refused our credentials: nothing is wrong with the events
    408: Outcome.RETRY,
    425: Outcome.RETRY,
    429: Outcome.RETRY,
}


def classify(status: int, overrides: Mapping[int, Outcome] | None = None) -> Outcome:
    """Return the outcome for an HTTP status: connector overrides first, then the default table, then by class."""
    if overrides is not None and status in overrides:
        return overrides[status]
    if status in DEFAULT_OUTCOMES:
        return DEFAULT_OUTCOMES[status]
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status >= 500:
        return Outcome.RETRY
    if 400 <= status < 500:
        return Outcome.REJECT
    # 1xx and 3xx mean the request was not handled as an API call (a proxy or a wrong base_url): try again later.
    return Outcome.RETRY


def status_class(status: int) -> str:
    """Bounded label for a status: `2xx`..`5xx`, or `error` for a transport failure."""
    if status == TRANSPORT_FAILURE:
        return "error"
    return f"{status // 100}xx"


def retry_reason(status: int, transport_reason: str = "") -> str:
    """Bounded label for why a delivery is retried (the `reason` of gateway_delivery_retries_total)."""
    if status == TRANSPORT_FAILURE:
        return transport_reason or "connection"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return f"http_{status}" if status in (500, 502, 503, 504, 510) else "http_5xx"
    return f"http_{status}" if status in (408, 425) else "other"


@dataclass(frozen=True, slots=True)
class SendResult:
    """A connector client's verdict on one send of a batch of records.

    `delivered` names records (by index in the batch) already stored on a partial result; the outcome then applies
    only to the others. `rejected` names the records the vendor said are bad; None means it did not say which, and
    the engine isolates them by splitting the batch. `duplicates` counts records the vendor already had: among the
    `delivered` ones on a partial result, else among the whole batch when the outcome is DELIVERED.
    """

    outcome: Outcome
    status: int = 200
    reason: str = ""
    detail: str = ""
    retry_after: float | None = None
    rejected: frozenset[int] | None = None
    delivered: frozenset[int] | None = None
    duplicates: int = 0
