"""The Unibo sandbox: `POST /api/v1/events` with Unibo's documented checks, compact storage, Unibo faults, control API.

Response bodies (Unibo publishes none, so these shapes are the sandbox's own):
  403  {"detail": "Not authenticated" | "Invalid API key"}
  415  {"detail": "content-type must be application/json"}
  422  {"detail": [{"loc": ["items", <index>, "data", "<field>"], "msg": "...", "type": "..."}, ...]}  nothing stored
  510  {"detail": "...", "failed_unique_ids": ["...", ...]}  the other items of the batch were stored
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web

from devkit.sandbox.control import json_response
from devkit.sandbox.faults import FaultInjector
from devkit.sandbox.unibo.control import add_control_routes
from devkit.sandbox.unibo.validation import ErrorDetail, error_detail, validate_items

EVENTS_PATH = "/api/v1/events"
# Unibo publishes no byte limit and recommends 10k-item batches (a few MB); aiohttp's own default is 1 MiB.
DEFAULT_MAX_BODY = 256 * 1024 * 1024


@dataclass(slots=True)
class TenantLog:
    """What one tenant's stored batches delivered; `received` keeps arrival order (dicts are ordered)."""

    received: dict[str, float] = field(default_factory=dict)  # unique_id -> first receive time (time.time())
    duplicates: int = 0
    by_event: Counter[str] = field(default_factory=Counter)
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # unique_id -> item, only with keep_payloads


@dataclass(slots=True)
class UniboStats:
    """Request counters since the last reset (requests swallowed by a generic fault are counted by the injector)."""

    requests: int = 0
    accepted_batches: int = 0
    rejected_batches: int = 0
    partial_batches: int = 0
    auth_failures: int = 0
    bad_requests: int = 0
    items_received: int = 0
    fail_item_hits: int = 0
    stuck_batches: int = 0


class UniboSandbox:
    """State of one Unibo sandbox plus its aiohttp app; tests may drive it in process through these methods."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        *,
        keep_payloads: bool = False,
        fault_seed: int | None = None,
        client_max_size: int = DEFAULT_MAX_BODY,
    ) -> None:
        """`keys` maps each accepted `x-api-key` value to its tenant name."""
        self._initial_keys = dict(keys or {})
        self.keys: dict[str, str] = dict(self._initial_keys)
        self.keep_payloads = keep_payloads
        self.faults = FaultInjector(seed=fault_seed)
        self.tenants: dict[str, TenantLog] = {}
        self.stats = UniboStats()
        self.fail_items: set[str] = set()
        self.stuck_items: set[str] = set()
        self.partial_store_remaining = 0
        self._client_max_size = client_max_size
        self._app: web.Application | None = None

    def app(self) -> web.Application:
        """The aiohttp application serving this sandbox (built once)."""
        if self._app is None:
            app = web.Application(client_max_size=self._client_max_size)
            self.faults.install(app)
            app.router.add_post(EVENTS_PATH, self._post_events)
            add_control_routes(app, self)
            self._app = app
        return self._app

    def set_keys(self, keys: Mapping[str, str]) -> None:
        """Replace the accepted keys (api key -> tenant), e.g. to simulate a rotated key and then the fix."""
        self.keys = dict(keys)

    def set_fail_items(self, unique_ids: Iterable[str]) -> None:
        """Make every batch containing one of these unique_ids answer 422 naming them; an empty iterable clears."""
        self.fail_items = set(unique_ids)

    def set_stuck_items(self, unique_ids: Iterable[str]) -> None:
        """Answer 503 to every batch holding one of these unique_ids (a record stuck on a server error forever)."""
        self.stuck_items = set(unique_ids)

    def set_partial_store(self, batches: int) -> None:
        """Answer 510 to the next `batches` valid batches, storing only every other item of each (0 clears)."""
        if batches < 0:
            raise ValueError("batches must be >= 0")
        self.partial_store_remaining = batches

    def reset(self) -> None:
        """Back to the startup state: nothing stored, counters zero, initial keys, no faults."""
        self.keys = dict(self._initial_keys)
        self.tenants.clear()
        self.stats = UniboStats()
        self.fail_items.clear()
        self.stuck_items.clear()
        self.partial_store_remaining = 0
        self.faults.reset()

    def tenant(self, name: str) -> TenantLog:
        """The log of tenant `name` (empty if it never delivered)."""
        return self.tenants.get(name) or TenantLog()

    def unique_ids(self, tenant: str) -> list[str]:
        """Stored unique_ids of `tenant` in arrival order."""
        return list(self.tenant(tenant).received)

    @property
    def total_unique(self) -> int:
        """Stored unique_ids over all tenants."""
        return sum(len(log.received) for log in self.tenants.values())

    def report(self, *, include_ids: bool = False, tenant: str | None = None) -> dict[str, Any]:
        """Counters, per-tenant counts (and unique_ids in arrival order with `include_ids`) and fault counts."""
        tenants: dict[str, Any] = {}
        for name, log in self.tenants.items():
            if tenant is not None and name != tenant:
                continue
            entry: dict[str, Any] = {"unique": len(log.received), "duplicates": log.duplicates}
            entry["by_event"] = dict(log.by_event)
            if include_ids:
                entry["unique_ids"] = list(log.received)
            tenants[name] = entry
        return {
            **asdict(self.stats),
            "unique_total": self.total_unique,
            "duplicates_total": sum(log.duplicates for log in self.tenants.values()),
            "tenants": tenants,
            "fail_items": sorted(self.fail_items),
            "partial_store_remaining": self.partial_store_remaining,
            "faults_injected": self.faults.total_injected + self.stats.fail_item_hits + self.stats.partial_batches,
            "faults": self.faults.report(),
        }

    async def _post_events(self, request: web.Request) -> web.Response:
        stats = self.stats
        stats.requests += 1
        api_key = request.headers.get("x-api-key")
        tenant = self.keys.get(api_key) if api_key else None
        if tenant is None:
            stats.auth_failures += 1
            return json_response({"detail": "Invalid API key" if api_key else "Not authenticated"}, 403)
        if request.content_type != "application/json":
            stats.bad_requests += 1
            return json_response({"detail": "content-type must be application/json"}, 415)
        items, errors = _parse_body(await request.read())
        if not errors and self.stuck_items and any(item["data"]["unique_id"] in self.stuck_items for item in items):
            stats.stuck_batches += 1
            return json_response({"detail": "sandbox stuck item: internal error"}, 503)
        if not errors and self.fail_items:
            errors = self._fail_item_errors(items)
        if errors:
            stats.rejected_batches += 1
            return json_response({"detail": errors}, 422)
        if self.partial_store_remaining > 0:
            self.partial_store_remaining -= 1
            stats.partial_batches += 1
            stored, failed = (items[0::2], items[1::2]) if len(items) > 1 else ([], items)
            self._store(tenant, stored)
            failed_ids = [item["data"]["unique_id"] for item in failed]
            detail = f"{len(failed_ids)} of {len(items)} events could not be stored (sandbox partial_store)"
            return json_response({"detail": detail, "failed_unique_ids": failed_ids}, 510)
        self._store(tenant, items)
        stats.accepted_batches += 1
        return web.Response(status=204)

    def _fail_item_errors(self, items: list[dict[str, Any]]) -> list[ErrorDetail]:
        fail = self.fail_items
        errors = [
            error_detail(["items", index, "data", "unique_id"], "value_error", "rejected by the sandbox (fail_items)")
            for index, item in enumerate(items)
            if item["data"]["unique_id"] in fail
        ]
        self.stats.fail_item_hits += len(errors)
        return errors

    def _store(self, tenant: str, items: list[dict[str, Any]]) -> None:
        log = self.tenants.get(tenant)
        if log is None:
            log = self.tenants[tenant] = TenantLog()
        now = time.time()  # one float object shared by the whole batch keeps 1M stored ids compact
        received, by_event, payloads = log.received, log.by_event, log.payloads
        keep, duplicates = self.keep_payloads, 0
        for item in items:
            unique_id = item["data"]["unique_id"]
            if unique_id in received:
                duplicates += 1
                continue
            received[unique_id] = now
            by_event[item["event"]] += 1
            if keep:
                payloads[unique_id] = item
        log.duplicates += duplicates
        self.stats.items_received += len(items)


def _parse_body(raw: bytes) -> tuple[list[dict[str, Any]], list[ErrorDetail]]:
    """The batch's items, or the 422 errors of a body that is not `{"items": [...]}` with valid items."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [], [error_detail(["body"], "json_invalid", f"JSON decode error: {exc}")]
    if type(body) is not dict:
        return [], [error_detail(["body"], "model_type", "Input should be an object")]
    errors = [
        error_detail([key], "extra_forbidden", "Extra inputs are not permitted") for key in body if key != "items"
    ]
    items = body.get("items")
    if type(items) is not list:
        kind, msg = ("list_type", "Input should be a valid list") if "items" in body else ("missing", "Field required")
        return [], [*errors, error_detail(["items"], kind, msg)]
    return items, errors + validate_items(items)


__all__ = ["DEFAULT_MAX_BODY", "EVENTS_PATH", "TenantLog", "UniboSandbox", "UniboStats"]
