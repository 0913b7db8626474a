"""The Enable3 sandbox: the integration API's endpoints with the documented checks, per-user arrival order, control API.

Response bodies (Enable3 publishes none, so these shapes are the sandbox's own):
  401  {"message": "Unauthorized"}  missing or unknown X-API-KEY
  400  {"message": ["<error>", ...]}  invalid body; nothing stored
  409  {"message": "duplicate entry"}  an id already stored, only when conflicts are switched on
Widget {"url": "<sandbox>/widget?token=..."}; token {"token": "<JWT-like>"}; balance {"balance": "0", "userExists": b}.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web

from devkit.sandbox.control import json_response
from devkit.sandbox.enable3.control import add_control_routes
from devkit.sandbox.enable3.validation import validate_event, validate_revenue, validate_segments
from devkit.sandbox.faults import FaultInjector

EVENT_PATH = "/api/v1/event"
REVENUE_PATH = "/api/v1/revenue"
SEGMENT_ADD_PATH = "/api/v1/segment/users/"
SEGMENT_REMOVE_PATH = "/api/v1/segment/users"
USER_PATH = "/api/v1/integration/user/{user}"


@dataclass(slots=True)
class Enable3Tenant:
    """What one tenant (operator key) delivered; dicts keep arrival order."""

    events: dict[str, float] = field(default_factory=dict)  # event id -> first receive time
    by_user: dict[str, list[str]] = field(default_factory=dict)  # userId -> event ids in arrival order
    by_event_id: Counter[str] = field(default_factory=Counter)  # eventId (mission name) -> count
    revenue: dict[str, float] = field(default_factory=dict)  # requestId -> revenue (the default body's shape)
    revenue_bodies: list[Any] = field(default_factory=list)  # bodies of another shape (a custom revenue_template)
    segments: list[tuple[str, Any]] = field(default_factory=list)  # ("add" | "remove", body) in arrival order
    duplicates: int = 0
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> body, only with keep_payloads


@dataclass(slots=True)
class Enable3Stats:
    """Request counters since the last reset (requests swallowed by a generic fault are counted by the injector)."""

    requests: int = 0
    auth_failures: int = 0
    bad_requests: int = 0
    conflicts: int = 0
    fail_id_hits: int = 0
    widget_requests: int = 0


class Enable3Sandbox:
    """State of one Enable3 sandbox plus its aiohttp app; tests drive it in process through these methods."""

    def __init__(
        self, keys: Mapping[str, str] | None = None, *, keep_payloads: bool = False, fault_seed: int | None = None
    ) -> None:
        """`keys` maps each accepted `X-API-KEY` value to its tenant name."""
        self._initial_keys = dict(keys or {})
        self.keys: dict[str, str] = dict(self._initial_keys)
        self.keep_payloads = keep_payloads
        self.faults = FaultInjector(seed=fault_seed)
        self.tenants: dict[str, Enable3Tenant] = {}
        self.stats = Enable3Stats()
        self.fail_ids: dict[str, int] = {}
        self.conflict_on_duplicate = False
        self.issued_tokens: list[str] = []
        self._app: web.Application | None = None

    def app(self) -> web.Application:
        """The aiohttp application serving this sandbox (built once)."""
        if self._app is None:
            app = web.Application()
            self.faults.install(app)
            app.router.add_post(EVENT_PATH, self._guarded(self._post_event))
            app.router.add_post(REVENUE_PATH, self._guarded(self._post_revenue))
            app.router.add_post(SEGMENT_ADD_PATH, self._guarded(self._segments("add")))
            app.router.add_delete(SEGMENT_REMOVE_PATH, self._guarded(self._segments("remove")))
            app.router.add_get(USER_PATH + "/widget", self._guarded(self._widget))
            app.router.add_get(USER_PATH + "/token", self._guarded(self._token))
            app.router.add_get(USER_PATH + "/balance", self._guarded(self._balance))
            add_control_routes(app, self)
            self._app = app
        return self._app

    # ---- control ----------------------------------------------------------------------------------------------

    def set_keys(self, keys: Mapping[str, str]) -> None:
        """Replace the accepted keys (api key -> tenant), e.g. to simulate a revoked key and then the fix."""
        self.keys = dict(keys)

    def set_fail_ids(self, ids: Iterable[str], status: int = 400) -> None:
        """Answer `status` (a 4xx) to events with these ids, storing nothing; an empty iterable clears."""
        self.fail_ids = dict.fromkeys(ids, status)

    def reset(self) -> None:
        """Back to the startup state: nothing stored, counters zero, initial keys, no faults."""
        self.keys = dict(self._initial_keys)
        self.tenants.clear()
        self.stats = Enable3Stats()
        self.fail_ids.clear()
        self.conflict_on_duplicate = False
        self.issued_tokens.clear()
        self.faults.reset()

    # ---- reading ----------------------------------------------------------------------------------------------

    def tenant(self, name: str) -> Enable3Tenant:
        """The log of tenant `name` (empty if it never delivered)."""
        return self.tenants.get(name) or Enable3Tenant()

    def event_ids(self, tenant: str) -> list[str]:
        """Stored event ids of `tenant` in arrival order."""
        return list(self.tenant(tenant).events)

    def user_order(self, tenant: str, user: str) -> list[str]:
        """Event ids of one user in the order they arrived."""
        return list(self.tenant(tenant).by_user.get(user, ()))

    @property
    def total_events(self) -> int:
        """Stored event ids over all tenants."""
        return sum(len(log.events) for log in self.tenants.values())

    def report(self, *, include_ids: bool = False, tenant: str | None = None) -> dict[str, Any]:
        """Counters, per-tenant counts (and ids in arrival order with `include_ids`) and fault counts."""
        tenants: dict[str, Any] = {}
        for name, log in self.tenants.items():
            if tenant is not None and name != tenant:
                continue
            entry: dict[str, Any] = {
                "events": len(log.events),
                "users": len(log.by_user),
                "revenue": len(log.revenue),
                "segment_requests": len(log.segments),
                "duplicates": log.duplicates,
                "by_event_id": dict(log.by_event_id),
            }
            if include_ids:
                entry["ids"] = list(log.events)
                entry["revenue_ids"] = list(log.revenue)
            tenants[name] = entry
        return {
            **asdict(self.stats),
            "events_total": self.total_events,
            "tenants": tenants,
            "fail_ids": sorted(self.fail_ids),
            "conflict_on_duplicate": self.conflict_on_duplicate,
            "faults": self.faults.report(),
        }

    # ---- the API ----------------------------------------------------------------------------------------------

    def _log(self, tenant: str) -> Enable3Tenant:
        log = self.tenants.get(tenant)
        if log is None:
            log = self.tenants[tenant] = Enable3Tenant()
        return log

    def _guarded(self, handler: Callable[[web.Request, str], Any]) -> Callable[[web.Request], Any]:
        """Count the request and check X-API-KEY (401 otherwise) before `handler(request, tenant)`."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            self.stats.requests += 1
            api_key = request.headers.get("X-API-KEY")
            tenant = self.keys.get(api_key) if api_key else None
            if tenant is None:
                self.stats.auth_failures += 1
                return json_response({"message": "Unauthorized"}, 401)
            response: web.StreamResponse = await handler(request, tenant)
            return response

        return guarded

    async def _body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        try:
            return orjson.loads(await request.read()), None
        except orjson.JSONDecodeError:
            self.stats.bad_requests += 1
            return None, json_response({"message": ["body must be JSON"]}, 400)

    def _invalid(self, errors: list[str]) -> web.Response:
        self.stats.bad_requests += 1
        return json_response({"message": errors}, 400)

    def _duplicate(self, log: Enable3Tenant) -> web.Response | None:
        log.duplicates += 1
        if self.conflict_on_duplicate:
            self.stats.conflicts += 1
            return json_response({"message": "duplicate entry"}, 409)
        return None

    async def _post_event(self, request: web.Request, tenant: str) -> web.Response:
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        errors = validate_event(body)
        if errors:
            return self._invalid(errors)
        event_id: str = body["id"]
        status = self.fail_ids.get(event_id)
        if status is not None:
            self.stats.fail_id_hits += 1
            return json_response({"message": f"event {event_id} refused by the sandbox (fail-ids)"}, status)
        log = self._log(tenant)
        if event_id in log.events:
            return self._duplicate(log) or web.Response(status=201)
        log.events[event_id] = time.time()
        log.by_user.setdefault(body["userId"], []).append(event_id)
        log.by_event_id[body["eventId"]] += 1
        if self.keep_payloads:
            log.payloads[event_id] = body
        return web.Response(status=201)

    async def _post_revenue(self, request: web.Request, tenant: str) -> web.Response:
        body, bad = await self._body(request)
        if bad is not None:
            return bad
        errors = validate_revenue(body)
        if errors:
            return self._invalid(errors)
        log = self._log(tenant)
        if type(body) is not dict or "requestId" not in body:
            log.revenue_bodies.append(body)  # Enable3 documents no revenue body: another shape is recorded as it is
            return web.Response(status=204)
        if body["requestId"] in log.revenue:
            return self._duplicate(log) or web.Response(status=204)
        log.revenue[body["requestId"]] = float(body["revenue"])
        return web.Response(status=204)

    def _segments(self, action: str) -> Callable[[web.Request, str], Any]:
        async def segments(request: web.Request, tenant: str) -> web.Response:
            body, bad = await self._body(request)
            if bad is not None:
                return bad
            errors = validate_segments(body)
            if errors:
                return self._invalid(errors)
            self._log(tenant).segments.append((action, body))
            return web.Response(status=200)

        return segments

    async def _widget(self, request: web.Request, tenant: str) -> web.Response:
        self.stats.widget_requests += 1
        token = self._issue(request.match_info["user"])
        query = "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
        url = f"{request.scheme}://{request.host}/widget?token={token}" + (f"&{query}" if query else "")
        return json_response({"url": url})

    async def _token(self, request: web.Request, tenant: str) -> web.Response:
        self.stats.widget_requests += 1
        return json_response({"token": self._issue(request.match_info["user"])})

    async def _balance(self, request: web.Request, tenant: str) -> web.Response:
        self.stats.widget_requests += 1
        exists = request.match_info["user"] in self.tenant(tenant).by_user
        return json_response({"balance": "12.50" if exists else "0", "userExists": exists})

    def _issue(self, user: str) -> str:
        """A JWT-shaped token (header.payload.signature); unsigned: the sandbox only needs it to be unique."""
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        payload = base64.urlsafe_b64encode(orjson.dumps({"sub": user})).rstrip(b"=").decode()
        token = f"{header}.{payload}.{secrets.token_urlsafe(24)}"
        self.issued_tokens.append(token)
        return token


__all__ = ["EVENT_PATH", "REVENUE_PATH", "Enable3Sandbox", "Enable3Stats", "Enable3Tenant"]
