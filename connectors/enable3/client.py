"""Enable3 HTTP client: one request per record, in order, and the answer classified (409 = already received)."""

from __future__ import annotations

from collections.abc import Sequence

from multidict import CIMultiDict, CIMultiDictProxy

from connectors.enable3.config import Enable3Credentials, Enable3Options
from connectors.enable3.mapping import EVENT, REVENUE, SEGMENT_ADD, SEGMENT_REMOVE
from connectors.enable3.not_found import NOT_FOUND, NotFoundRuns
from gateway.connector import ClientContext, VendorRecord
from gateway.http_client import HttpResponse
from gateway.outcomes import Outcome, SendResult, classify
from gateway.ownership import revoked, still_owned
from gateway.vendor_results import send_result

DEFAULT_BASE_URL = "https://integration.enable3.io"
# route -> (method, path). The paths are Enable3's, trailing slash included where its documents show one.
ENDPOINTS: dict[str, tuple[str, str]] = {
    EVENT: ("POST", "/api/v1/event"),
    REVENUE: ("POST", "/api/v1/revenue"),
    SEGMENT_ADD: ("POST", "/api/v1/segment/users/"),
    SEGMENT_REMOVE: ("DELETE", "/api/v1/segment/users"),
}
# Enable3's only documented 409 is "duplicate entry": the record is already there. 400/404 (user not found) are the
# core's REJECT and 401/403 (key or IP allow-list) its HALT already.
DUPLICATE = 409
OVERRIDES = {DUPLICATE: Outcome.DELIVERED}
MAX_DETAIL = 1000


class Enable3Client:
    """Sends one tenant's records to Enable3 one request each, with its X-API-KEY, stopping at the first failure.

    The engine hands it one player's records at a time (`per_key_requests`) and sends different players in parallel
    over pooled keep-alive connections; sending them in order keeps each player's order. A failure ends the send
    with a partial result: the records before it are settled, and the engine retries, dead-letters or halts on the
    rest of that player's records only.
    """

    per_key_requests = True  # one request per record: the engine delivers each player's records on their own

    def __init__(self, context: ClientContext) -> None:
        base_url = context.destination.base_url or DEFAULT_BASE_URL
        self._urls = {route: (method, base_url + path) for route, (method, path) in ENDPOINTS.items()}
        self._http = context.http
        options = context.options if isinstance(context.options, Enable3Options) else Enable3Options()
        self._not_found = NotFoundRuns(options.halt_after_not_found)
        self._headers: dict[int, tuple[Enable3Credentials, CIMultiDictProxy[str]]] = {}

    def _headers_for(self, credentials: Enable3Credentials) -> CIMultiDictProxy[str]:
        """The tenant's headers, built once, in the form aiohttp takes without copying them into one first. Keyed by
        the credentials object, which the entry holds (so its id is never another's); hashing the model per request
        would cost more than building the headers."""
        entry = self._headers.get(id(credentials))
        if entry is None or entry[0] is not credentials:
            api_key = credentials.api_key.get_secret_value()
            headers = CIMultiDictProxy(CIMultiDict({"X-API-KEY": api_key, "content-type": "application/json"}))
            entry = self._headers[id(credentials)] = (credentials, headers)
        return entry[1]

    async def send(self, credentials: Enable3Credentials, records: Sequence[VendorRecord]) -> SendResult:
        """Send each record in order; DELIVERED when all are stored, else the first failure with what went before."""
        headers = self._headers_for(credentials)
        duplicates = 0
        for index, record in enumerate(records):
            if not still_owned(record):  # revoked mid-batch: another replica sends it now
                return revoked(index, duplicates)
            method, url = self._urls[record.route]
            response = await self._http.request(method, url, body=record.body, headers=headers)
            outcome = classify(response.status, OVERRIDES)
            if outcome is Outcome.DELIVERED:
                self._not_found.accepted(id(credentials))
                duplicates += response.status == DUPLICATE
                continue
            if self._halts(response.status, record, id(credentials)):
                delivered = frozenset(range(index)) if index else None
                message = self._not_found.message()
                return SendResult(Outcome.HALT, NOT_FOUND, detail=message, delivered=delivered, duplicates=duplicates)
            return failure(response, outcome, index, duplicates)
        return SendResult(Outcome.DELIVERED, 200, duplicates=duplicates)

    def _halts(self, status: int, record: VendorRecord, tenant: int) -> bool:
        """Whether this answer is a 404 from /event that completes a run over enough different players (a wrong
        base_url or key: halt), rather than one unknown user (that record's REJECT)."""
        return status == NOT_FOUND and record.route == EVENT and self._not_found.not_found(tenant, record.key)

    async def close(self) -> None:
        """Nothing to release: the transport belongs to the pipeline."""


def failure(response: HttpResponse, outcome: Outcome, index: int, duplicates: int) -> SendResult:
    """The result of a send that stopped at record `index`: the records before it are delivered."""
    delivered = frozenset(range(index)) if index else None
    if outcome is Outcome.REJECT:
        detail = response.text[:MAX_DETAIL] or f"Enable3 answered {response.status}"
        rejected = frozenset({index})
        return send_result(
            response, outcome, detail=detail, rejected=rejected, delivered=delivered, duplicates=duplicates
        )
    return send_result(response, outcome, delivered=delivered, duplicates=duplicates)
