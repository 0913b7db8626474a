"""Unibo HTTP client: builds the batch request, authenticates it, and classifies the answer (422, 510, 403)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from connectors.unibo.config import UniboCredentials
from gateway.connector import ClientContext, VendorRecord
from gateway.http_client import HttpResponse
from gateway.outcomes import Outcome, SendResult, classify
from gateway.vendor_results import send_result

PATH = "/api/v1/events"
# Unibo's own statuses on top of the core table: 422 names bad items (nothing stored), 510 stored only part.
# The endpoint is fixed, so 404/405 can only mean a wrong base_url: halt rather than dead-letter the whole stream.
OVERRIDES = {422: Outcome.REJECT, 510: Outcome.RETRY, 404: Outcome.HALT, 405: Outcome.HALT}
MAX_DETAIL = 1000


def batch_body(records: Sequence[VendorRecord]) -> bytes:
    """`{"items": [...]}` from items serialized once at mapping time, copied once: the envelope's opening goes onto
    the first item and its closing onto the last, so the items are joined straight into the body."""
    bodies = [record.body for record in records]
    if not bodies:
        return b'{"items":[]}'
    bodies[0] = b'{"items":[' + bodies[0]
    bodies[-1] += b"]}"
    return b",".join(bodies)


def _item_index(loc: Any) -> int | None:
    """The item index in a validation error location such as ["body", "items", 3, "data", "amount"]."""
    if not isinstance(loc, list):
        return None
    for position, part in enumerate(loc[:-1]):
        if part == "items" and isinstance(loc[position + 1], int):
            return int(loc[position + 1])
    return None


def rejected_items(body: bytes, size: int) -> tuple[frozenset[int] | None, str]:
    """Which items a 422 names, and a readable detail. None when the body does not say (then the engine splits).

    Unibo publishes no 422 shape; FastAPI's `{"detail": [{"loc": [...], "msg": ...}]}` is parsed when present,
    and anything else falls back to splitting.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body.decode("utf-8", "replace")[:MAX_DETAIL]
    details = payload.get("detail") if isinstance(payload, dict) else None
    if not isinstance(details, list):
        return None, body.decode("utf-8", "replace")[:MAX_DETAIL]
    indexes: set[int] = set()
    messages: list[str] = []
    for entry in details:
        if not isinstance(entry, dict):
            return None, body.decode("utf-8", "replace")[:MAX_DETAIL]
        index = _item_index(entry.get("loc"))
        if index is None or not 0 <= index < size:
            return None, body.decode("utf-8", "replace")[:MAX_DETAIL]
        indexes.add(index)
        loc = ".".join(str(part) for part in entry.get("loc", []))
        messages.append(f"{loc}: {entry.get('msg', '')}")
    if not indexes:
        return None, body.decode("utf-8", "replace")[:MAX_DETAIL]
    return frozenset(indexes), "; ".join(messages)[:MAX_DETAIL]


class UniboClient:
    """Sends one tenant's batch to `POST {base_url}/api/v1/events` with its x-api-key."""

    def __init__(self, context: ClientContext) -> None:
        base_url = context.destination.base_url or "https://consumer.unibo.io"
        self._url = base_url + PATH
        self._http = context.http

    async def send(self, credentials: UniboCredentials, records: Sequence[VendorRecord]) -> SendResult:
        """POST the batch and classify the answer."""
        headers = {"x-api-key": credentials.api_key.get_secret_value(), "content-type": "application/json"}
        response = await self._http.request("POST", self._url, body=batch_body(records), headers=headers)
        return classify_response(response, len(records))

    async def close(self) -> None:
        """Nothing to release: the transport belongs to the pipeline."""


def classify_response(response: HttpResponse, size: int) -> SendResult:
    """Map Unibo's answer onto the outcome table."""
    status = response.status
    outcome = classify(status, OVERRIDES)
    if status == 422:  # nothing stored; the body may name the bad items
        rejected, detail = rejected_items(response.body, size)
        return send_result(response, outcome, detail=detail, rejected=rejected)
    return send_result(response, outcome, reason="partial_store" if status == 510 else "")
