"""The UserWise sandbox: the three per-player POST endpoints with UserWise's key and request-hash checks, recording.

Checks, as the server API documents them: `X-Api-Key` is base64 of an accepted app key, and `enc` (a query parameter)
is sha3_256(full URL without enc + raw body + company secret) over exactly the URL and bytes received; either wrong
→ 401. Bodies are validated (422, see userwise_validation.py). Accepted items are recorded per app and per player in
arrival order across the endpoints; events are not deduplicated (as on UserWise), revenue events upsert by
transaction_id, attributes upsert by name. Answers `204 No Content` like UserWise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from devkit.sandbox.control import json_response
from devkit.sandbox.faults import FaultInjector
from devkit.sandbox.userwise.control import add_control_routes
from devkit.sandbox.userwise.validation import validate

APPUSER_PREFIX = "/api/v1/appuser/"
ENDPOINTS = ("events", "revenue_events", "attributes")
DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_KEY = "sandbox-userwise-key"
DEFAULT_SECRET = "sandbox-userwise-secret"  # noqa: S105 - the sandbox's well-known default, not a credential


@dataclass(slots=True)
class AppLog:
    """What one app (tenant) received. `timeline` is per player, in arrival order: (endpoint, event_uid | name)."""

    event_uids: dict[str, int] = field(default_factory=dict)  # event_uid -> times received (UserWise keeps repeats)
    events_by_name: Counter[str] = field(default_factory=Counter)
    revenue: dict[str, dict[str, Any]] = field(default_factory=dict)  # transaction_id -> latest item
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # player -> attribute name -> value
    timeline: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_uid -> item, with keep_payloads
    first_seen: dict[str, float] = field(default_factory=dict)  # event_uid or transaction_id -> time.time()

    @property
    def duplicates(self) -> int:
        """Events received more than once (what a re-send of an acknowledged request would cause)."""
        return sum(count - 1 for count in self.event_uids.values())


@dataclass(slots=True)
class UserWiseStats:
    """Request counters since the last reset."""

    requests: int = 0
    accepted: int = 0
    key_failures: int = 0
    hash_failures: int = 0
    rejected: int = 0
    fail_uid_hits: int = 0
    items_received: int = 0


def _uid(item: dict[str, Any]) -> str | None:
    for attribute in item.get("attributes") or ():
        if isinstance(attribute, dict) and attribute.get("name", "").endswith("event_uid"):
            value = attribute.get("value")
            return value if isinstance(value, str) else None
    return None


class UserWiseSandbox:
    """State of one UserWise sandbox plus its aiohttp app; tests may drive it in process through these methods."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        secret: str = DEFAULT_SECRET,
        *,
        keep_payloads: bool = False,
        fault_seed: int | None = None,
    ) -> None:
        """`keys` maps each accepted (plain) app key to its tenant name; `secret` is the company's secret key."""
        self._initial = (dict(keys or {}), secret)
        self.keys: dict[str, str] = dict(self._initial[0])
        self.secret = secret
        self.keep_payloads = keep_payloads
        self.faults = FaultInjector(seed=fault_seed)
        self.apps: dict[str, AppLog] = {}
        self.stats = UserWiseStats()
        self.fail_uids: set[str] = set()
        self._app: web.Application | None = None

    def app(self) -> web.Application:
        """The aiohttp application serving this sandbox (built once)."""
        if self._app is None:
            app = web.Application(client_max_size=DEFAULT_MAX_BODY)
            self.faults.install(app)
            app.router.add_post(APPUSER_PREFIX + "{tail:.+}", self._post)
            add_control_routes(app, self)
            self._app = app
        return self._app

    def set_keys(self, keys: Mapping[str, str]) -> None:
        """Replace the accepted app keys (plain key -> tenant)."""
        self.keys = dict(keys)

    def set_secret(self, secret: str) -> None:
        """Replace the company secret that `enc` must be computed with."""
        self.secret = secret

    def set_fail_uids(self, uids: Iterable[str]) -> None:
        """Answer 422 to every request holding an item with one of these event_uids or transaction_ids ([] clears)."""
        self.fail_uids = set(uids)

    def reset(self) -> None:
        """Back to the startup state: nothing recorded, counters zero, initial keys and secret, no faults."""
        self.keys, self.secret = dict(self._initial[0]), self._initial[1]
        self.apps.clear()
        self.stats = UserWiseStats()
        self.fail_uids.clear()
        self.faults.reset()

    def app_log(self, tenant: str) -> AppLog:
        """The log of `tenant` (empty if it never delivered)."""
        return self.apps.get(tenant) or AppLog()

    @property
    def total_events(self) -> int:
        """Distinct event_uids received over all apps."""
        return sum(len(log.event_uids) for log in self.apps.values())

    def report(self, *, include_ids: bool = False, player: str | None = None) -> dict[str, Any]:
        """Counters, per-app counts (with ids when asked) and a player's timeline when asked."""
        apps: dict[str, Any] = {}
        for name, log in self.apps.items():
            entry: dict[str, Any] = {
                "events": len(log.event_uids),
                "duplicates": log.duplicates,
                "revenue_events": len(log.revenue),
                "players": len(log.timeline),
                "by_event": dict(log.events_by_name),
            }
            if include_ids:
                entry["event_uids"] = list(log.event_uids)
                entry["transaction_ids"] = list(log.revenue)
            if player is not None:
                entry["timeline"] = log.timeline.get(player, [])
                entry["attributes"] = log.attributes.get(player, {})
            apps[name] = entry
        return {
            **asdict(self.stats),
            "events_total": self.total_events,
            "apps": apps,
            "fail_uids": sorted(self.fail_uids),
            "faults": self.faults.report(),
        }

    # ---- the vendor endpoints ---------------------------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.Response:
        stats = self.stats
        stats.requests += 1
        path, _, query = request.raw_path.partition("?")
        parts = path[len(APPUSER_PREFIX) :].split("/")
        if len(parts) != 2 or parts[1] not in ENDPOINTS or not parts[0]:
            return json_response({"error": "not found"}, 404)
        player, endpoint = unquote(parts[0], errors="strict"), parts[1]
        tenant = self._tenant(request.headers.get("X-Api-Key"))
        if tenant is None:
            stats.key_failures += 1
            return json_response({"error": "invalid api key"}, 401)
        body = await request.read()
        if not self._hash_ok(f"{request.scheme}://{request.host}{path}", query, body):
            stats.hash_failures += 1
            return json_response({"error": "invalid request hash"}, 401)
        try:
            items, errors = validate(endpoint, orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            items, errors = [], [{"path": "", "message": f"invalid JSON: {exc}"}]
        if not errors and self.fail_uids:
            errors = self._fail_uid_errors(endpoint, items)
        if errors:
            stats.rejected += 1
            return json_response({"errors": errors}, 422)
        self._record(tenant, player, endpoint, items)
        stats.accepted += 1
        return web.Response(status=204)

    def _tenant(self, header: str | None) -> str | None:
        if not header:
            return None
        try:
            key = base64.b64decode(header, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.keys.get(key)

    def _hash_ok(self, url: str, query: str, body: bytes) -> bool:
        """`enc` appears once and is the hash of the URL (with the other query parameters), the body and the secret."""
        params = query.split("&") if query else []
        encs = [param for param in params if param.startswith("enc=")]
        if len(encs) != 1:
            return False
        rest = "&".join(param for param in params if not param.startswith("enc="))
        signed = f"{url}?{rest}" if rest else url
        expected = hashlib.sha3_256(signed.encode("utf-8") + body + self.secret.encode("utf-8")).hexdigest()
        return hmac.compare_digest(encs[0][4:], expected)

    def _fail_uid_errors(self, endpoint: str, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        errors = []
        for index, item in enumerate(items):
            ids = {_uid(item), item.get("transaction_id"), item.get("name")}
            if ids & self.fail_uids:
                errors.append({"path": f"{endpoint}[{index}]", "message": "rejected by the sandbox (fail_uids)"})
        self.stats.fail_uid_hits += len(errors)
        return errors

    def _record(self, tenant: str, player: str, endpoint: str, items: list[dict[str, Any]]) -> None:
        log = self.apps.get(tenant)
        if log is None:
            log = self.apps[tenant] = AppLog()
        timeline = log.timeline.setdefault(player, [])
        now = time.time()
        for item in items:
            if endpoint == "attributes":
                log.attributes.setdefault(player, {})[item["name"]] = item["value"]
                timeline.append((endpoint, item["name"]))
                continue
            uid = _uid(item) or ""
            if endpoint == "revenue_events":
                key = item.get("transaction_id") or uid
                log.revenue[key] = item
                log.first_seen.setdefault(key, now)
                timeline.append((endpoint, key))
                continue
            log.event_uids[uid] = log.event_uids.get(uid, 0) + 1
            log.first_seen.setdefault(uid, now)
            log.events_by_name[item["event_id"]] += 1
            if self.keep_payloads:
                log.payloads[uid] = item
            timeline.append((endpoint, uid))
        self.stats.items_received += len(items)


__all__ = ["DEFAULT_KEY", "DEFAULT_SECRET", "AppLog", "UserWiseSandbox", "UserWiseStats"]
