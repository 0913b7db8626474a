"""UserWise HTTP client: sends a batch as per-player requests, signs each one, and folds the answers into one verdict.

Per player the requests go one after another and stop at the first that fails, so a player's order holds; players go
in parallel, and one player's transient failure never stops another's requests. (The delivery engine hands this client
one player's records per send, see `per_key_requests`, so each player also retries on its own schedule.)
The batch's verdict (a partial SendResult) combines the per-request outcomes, most severe first:
HALT (the key or hash is refused: nothing else can pass) > RETRY (transient: back off, then send the rest again) >
REJECT (a request UserWise refuses: dead-letter its record, or let the engine split to find it) > DELIVERED.
`delivered` always names the records whose request got a 2xx, so a retry never re-sends them: UserWise has no dedupe
for plain events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from connectors.userwise.config import DEFAULTS, UserWiseCredentials, UserWiseOptions
from connectors.userwise.requests import PlannedRequest, plan
from connectors.userwise.signing import AppUserUrls, api_key_header
from gateway.connector import ClientContext, VendorRecord
from gateway.http_client import HttpResponse
from gateway.logs import scrubber
from gateway.outcomes import Outcome, SendResult, classify
from gateway.ownership import revoked, still_owned
from gateway.vendor_results import send_result

log = structlog.get_logger("connectors.userwise.client")

DEFAULT_BASE_URL = "https://api.userwise.io"
MAX_DETAIL = 1000
SEVERITY = {Outcome.DELIVERED: 0, Outcome.REJECT: 1, Outcome.RETRY: 2, Outcome.HALT: 3}


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """A request that did not get a 2xx, and its classified result."""

    request: PlannedRequest
    result: SendResult


def classify_response(response: HttpResponse) -> SendResult:
    """One request's answer on the core outcome table (400/422 and other 4xx reject, 401/403 halt, 429/5xx retry)."""
    return send_result(response, classify(response.status))


def combine(delivered: set[int], failures: Sequence[RequestFailure]) -> SendResult:
    """The batch's verdict from the requests that got a 2xx and those that did not (see the module docstring)."""
    if not failures:
        return SendResult(Outcome.DELIVERED, 204)
    worst = max(failures, key=lambda failure: SEVERITY[failure.result.outcome])
    outcome = worst.result.outcome
    done = frozenset(delivered) if delivered else None
    if outcome is Outcome.RETRY:
        waits = [f.result.retry_after for f in failures if f.result.retry_after is not None]
        result = worst.result
        return SendResult(
            Outcome.RETRY, result.status, result.reason, result.detail, max(waits) if waits else None, delivered=done
        )
    if outcome is Outcome.HALT:
        return SendResult(Outcome.HALT, worst.result.status, detail=worst.result.detail, delivered=done)
    # REJECT: a refused request of one record names it; larger ones are isolated by the engine's splitting.
    single = frozenset(f.request.indexes[0] for f in failures if len(f.request.indexes) == 1)
    first = next((f for f in failures if len(f.request.indexes) == 1), worst)
    detail = f"{first.request.route}: {first.result.detail}"[:MAX_DETAIL]
    return SendResult(Outcome.REJECT, first.result.status, detail=detail, rejected=single or None, delivered=done)


class UserWiseClient:
    """Sends one tenant's batch to `POST {base_url}/api/v1/appuser/{id}/{events|revenue_events|attributes}?enc=...`."""

    per_key_requests = True  # each player's records are their own requests: the engine delivers them per player

    def __init__(self, context: ClientContext) -> None:
        destination = context.destination
        self._urls = AppUserUrls(destination.base_url or DEFAULT_BASE_URL)
        self._http = context.http
        options: UserWiseOptions = context.options
        self._max_items = options.max_items_per_request
        # Requests in flight for the destination stay within the pipeline's connection pool (one connection per
        # lane, at least 4), so a request never waits for a connection inside its timeout: a timed-out request is
        # ambiguous for UserWise (no dedupe for plain events), so spurious timeouts would mean duplicates. A send
        # of several players takes these slots; a one-player send (the engine's per-key path) runs inside one of the
        # engine's request slots, as many as the pool's connections.
        lanes = (destination.concurrency or DEFAULTS.concurrency) * max(1, len(destination.credentials))
        self._slots = asyncio.Semaphore(max(lanes, 4))
        self._headers: dict[int, tuple[UserWiseCredentials, CIMultiDictProxy[str]]] = {}

    def _headers_for(self, credentials: UserWiseCredentials) -> CIMultiDictProxy[str]:
        """The tenant's headers, built once, in the form aiohttp takes without copying them into one first. Keyed by
        the credentials object, which the entry holds (so its id is never another's); hashing the model per send
        would cost more. The base64 key is as good as the key: it is registered with the scrubber too, so a vendor
        echoing the header cannot leak it into a log line or a dead letter."""
        entry = self._headers.get(id(credentials))
        if entry is None or entry[0] is not credentials:
            api_key = api_key_header(credentials.api_key.get_secret_value())
            scrubber.register([api_key])
            headers = CIMultiDictProxy(CIMultiDict({"X-Api-Key": api_key, "Content-Type": "application/json"}))
            entry = self._headers[id(credentials)] = (credentials, headers)
        return entry[1]

    async def send(self, credentials: UserWiseCredentials, records: Sequence[VendorRecord]) -> SendResult:
        """Send every player's requests (players in parallel, each in order) and combine the answers."""
        headers = self._headers_for(credentials)
        secret = credentials.secret_key.get_secret_value()
        delivered: set[int] = set()
        failures: list[RequestFailure] = []
        players = plan(records, self._max_items)
        if len(players) == 1:
            # The engine's per-key sends: one player, its requests one at a time inside the engine's request slot,
            # which bounds the destination's requests to its pool as `_slots` does for several players.
            await self._player(players[0], records, headers, secret, delivered, failures, None)
        else:
            # Set on HALT: the rest would be refused the same way. A transient failure stops only its own player.
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                for requests in players:
                    group.create_task(self._player(requests, records, headers, secret, delivered, failures, stop))
        return combine(delivered, failures)

    async def _player(
        self,
        requests: list[PlannedRequest],
        records: Sequence[VendorRecord],
        headers: CIMultiDictProxy[str],
        secret: str,
        delivered: set[int],
        failures: list[RequestFailure],
        stop: asyncio.Event | None,
    ) -> None:
        """One player's requests in order, up to the first that fails (its later ones wait, so its order holds).
        With `stop` (several players at once), each request takes one of `_slots` and none starts once it is set."""
        for request in requests:
            if stop is not None and stop.is_set():
                return
            if not all(still_owned(records[index]) for index in request.indexes):
                failures.append(RequestFailure(request, revoked(0)))  # another replica sends the player now
                return
            if stop is None:
                result = await self._attempt(request, headers, secret, len(requests))
            else:
                async with self._slots:
                    if stop.is_set():
                        return
                    result = await self._attempt(request, headers, secret, len(requests))
            if result.outcome is Outcome.DELIVERED:
                delivered.update(request.indexes)
                continue
            failures.append(RequestFailure(request, result))
            if result.outcome is Outcome.HALT and stop is not None:
                stop.set()
            return

    async def _attempt(
        self, request: PlannedRequest, headers: CIMultiDictProxy[str], secret: str, player_requests: int
    ) -> SendResult:
        try:
            url = self._urls.signed(request.player, request.route, request.body, secret)
            response = await self._http.request("POST", url, body=request.body, headers=headers)
            return classify_response(response)
        except Exception as error:  # a bug in one request must not cancel the others' 2xx answers
            log.exception("userwise request failed in the client", player_requests=player_requests)
            return SendResult(Outcome.RETRY, 0, reason="client_error", detail=type(error).__name__)

    async def close(self) -> None:
        """Nothing to release: the transport belongs to the pipeline."""
