"""The closed set of delivery outcomes and the table that classifies a vendor response into one."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.immutable import immutable


class Outcome(enum.Enum):
    """What the delivery engine does with a vendor's answer."""

    DELIVERED = "delivered"  # the vendor has the records: settle them
    RETRY = "retry"  # transient: send the same records again after a backoff, with no count limit
    REJECT = "reject"  # permanent for some records: dead-letter those (split the batch to find them)
    HALT = "halt"  # credentials, allow-list or a redirect: stop the tenant, keep the records, probe slowly


# Transport failures are reported with status 0, so one table covers the network and HTTP.
TRANSPORT_FAILURE = 0


class FailureKind(enum.StrEnum):
    """Why no answer came (status 0): the bounded `reason` a transport failure is retried with."""

    TIMEOUT = "timeout"
    TLS = "tls"
    CONNECTION = "connection"  # refused, reset, or cut short mid-body
    CLIENT = "client"  # any other failure of the HTTP client


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """A request that got no answer: its kind, and the exception class behind it (never its message: it may hold a
    URL with a secret)."""

    kind: FailureKind
    cause: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.cause}" if self.cause else str(self.kind)


DEFAULT_OUTCOMES: Mapping[int, Outcome] = {
    TRANSPORT_FAILURE: Outcome.RETRY,
    401: Outcome.HALT,
    403: Outcome.HALT,
    407: Outcome.HALT,  # the egress proxy refused our credentials: nothing is wrong with the events
    408: Outcome.RETRY,
    425: Outcome.RETRY,
    429: Outcome.RETRY,
}


# By status class, after the exact statuses above. 1xx means a proxy in the way: try again later. A 3xx is never
# followed (a POST would reach the target as a GET, and the key with it): the base_url is wrong, so halt.
OUTCOMES_BY_CLASS: Mapping[int, Outcome] = {
    1: Outcome.RETRY,
    2: Outcome.DELIVERED,
    3: Outcome.HALT,
    4: Outcome.REJECT,
    5: Outcome.RETRY,
}


def classify(status: int, overrides: Mapping[int, Outcome] | None = None) -> Outcome:
    """Return the outcome for an HTTP status: connector overrides first, then the default table, then by class."""
    if overrides is not None and status in overrides:
        return overrides[status]
    if status in DEFAULT_OUTCOMES:
        return DEFAULT_OUTCOMES[status]
    return OUTCOMES_BY_CLASS.get(status // 100, Outcome.RETRY)


def is_redirect(status: int) -> bool:
    """A 3xx: the vendor points elsewhere, which the gateway treats as a configuration fault."""
    return 300 <= status < 400


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


@immutable
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
