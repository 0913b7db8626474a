"""Generic fault injection for the vendor sandboxes: `FaultPlan`s applied by aiohttp middleware, plus a control API."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.waits import wait_event

FaultKind = Literal["status", "rate_limit", "hang", "reset", "slow", "redirect"]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
CONTROL_PREFIX = "/_sandbox/"
_KIND_ALIASES = {"429": "rate_limit"}
_DEFAULT_SLOW_DELAY = 1.0
# JSON type each control-API field must have (bool is excluded from int on purpose).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "count": (int, type(None)),
    "fraction": (int, float),
    "status": (int,),
    "body": (str,),
    "retry_after": (int,),
    "delay": (int, float, type(None)),
    "path_prefix": (str,),
    "header": (str,),
    "location": (str,),
}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """One fault: `kind`, how many requests it hits (`count`, None = until cleared), which share of them (`fraction`).

    status: answer `status` with `body`.  rate_limit: answer 429 with `Retry-After: retry_after`.
    hang: read the request, never answer; drop the connection after `delay` s (None = when cleared or on shutdown).
    reset: read the request, then reset the TCP connection without answering.
    slow: wait `delay` s (default 1), then answer normally.
    redirect: answer `status` (a 3xx) with `Location: location`, as a vendor that moved or an http:// base_url would.
    Only requests whose path starts with `path_prefix` are eligible; the `/_sandbox/` control API never is.
    `header` ("Name: value") narrows a plan to requests carrying that header value, e.g. one tenant's API key: one
    lane of a destination slowed while the others flow.
    """

    kind: FaultKind
    count: int | None = None
    fraction: float = 1.0
    status: int = 503
    body: str = '{"detail":"sandbox injected fault"}'
    retry_after: int = 1
    delay: float | None = None
    path_prefix: str = "/"
    header: str = ""
    location: str = "https://elsewhere.invalid/moved"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}, got {self.kind!r}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 or null (until cleared)")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        if self.kind == "redirect":
            if not 300 <= self.status <= 399:
                raise ValueError("a redirect needs a 3xx status")
        elif not 400 <= self.status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0 seconds")
        if self.delay is not None and self.delay < 0:
            raise ValueError("delay must be >= 0 seconds")
        if self.header and ":" not in self.header:
            raise ValueError("header must be 'Name: value'")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from control-API JSON, rejecting unknown fields and wrong types with ValueError."""
        if not isinstance(raw, Mapping):
            raise ValueError("a fault plan must be a JSON object")
        unknown = set(raw) - set(_FIELD_TYPES)
        if unknown:
            raise ValueError(f"unknown fault plan fields: {sorted(unknown)}")
        for name, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[name]):
                raise ValueError(f"fault plan field {name!r} has the wrong type")
        values = dict(raw)
        if "kind" not in values:
            raise ValueError("fault plan needs a 'kind'")
        values["kind"] = _KIND_ALIASES.get(values["kind"], values["kind"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The plan as control-API JSON."""
        return asdict(self)


@dataclass(slots=True)
class _ArmedFault:
    plan: FaultPlan
    remaining: int | None
    injected: int = 0


class FaultInjector:
    """Holds the active fault plans of one sandbox app and applies them to incoming requests (single event loop)."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._armed: list[_ArmedFault] = []
        self._rng = random.Random(seed)
        self._release = asyncio.Event()
        self.injected: Counter[str] = Counter()

    def add(self, plan: FaultPlan) -> None:
        """Arm `plan`; plans are tried in the order they were added, first match wins."""
        self._armed.append(_ArmedFault(plan, plan.count))

    def clear(self) -> None:
        """Disarm every plan and let hanging requests drop their connections; counters are kept."""
        self._armed.clear()
        self.release_hangs()

    def reset(self) -> None:
        """Disarm every plan and zero the counters."""
        self.clear()
        self.injected.clear()

    def release_hangs(self) -> None:
        """End every request currently held by a `hang` fault."""
        self._release.set()
        self._release = asyncio.Event()

    @property
    def total_injected(self) -> int:
        """How many requests got a fault since the last reset."""
        return sum(self.injected.values())

    def report(self) -> dict[str, Any]:
        """Active plans (with what is left of them) and injection counts by kind."""
        active = [{**a.plan.to_dict(), "remaining": a.remaining, "injected": a.injected} for a in self._armed]
        return {"active": active, "injected": dict(self.injected), "injected_total": self.total_injected}

    def install(self, app: web.Application) -> None:
        """Add the middleware, the `/_sandbox/faults` control routes and hang release on shutdown to `app`."""
        app.middlewares.append(self.middleware())
        app.router.add_get("/_sandbox/faults", self._get_faults)
        app.router.add_post("/_sandbox/faults", self._post_faults)
        app.router.add_delete("/_sandbox/faults", self._delete_faults)
        app.on_shutdown.append(self._on_shutdown)

    def middleware(self) -> Middleware:
        """An aiohttp middleware that applies the first matching armed plan before the vendor handler runs."""

        @web.middleware
        async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
            plan = None if request.path.startswith(CONTROL_PREFIX) else self._take(request)
            if plan is None:
                return await handler(request)
            await request.read()  # accept the whole request first, like a real server that fails afterwards
            return await self._apply(plan, request, handler)

        return inject_faults

    def _take(self, request: web.Request) -> FaultPlan | None:
        for armed in self._armed:
            plan = armed.plan
            if not request.path.startswith(plan.path_prefix):
                continue
            if plan.header:
                name, _, value = plan.header.partition(":")
                if request.headers.get(name.strip()) != value.strip():
                    continue
            if plan.fraction < 1.0 and self._rng.random() >= plan.fraction:
                continue
            armed.injected += 1
            self.injected[plan.kind] += 1
            if armed.remaining is not None:
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
            return plan
        return None

    async def _apply(self, plan: FaultPlan, request: web.Request, handler: Handler) -> web.StreamResponse:
        if plan.kind == "slow":
            await asyncio.sleep(_DEFAULT_SLOW_DELAY if plan.delay is None else plan.delay)
            return await handler(request)
        if plan.kind == "status":
            return web.Response(status=plan.status, body=plan.body, content_type=_content_type(plan.body))
        if plan.kind == "redirect":
            return web.Response(status=plan.status, body=plan.body, headers={"Location": plan.location})
        if plan.kind == "rate_limit":
            headers = {"Retry-After": str(plan.retry_after)}
            return web.Response(status=429, body=plan.body, content_type=_content_type(plan.body), headers=headers)
        if plan.kind == "hang":
            await wait_event(self._release, plan.delay)
        _reset_connection(request)
        # The connection is gone: aiohttp discards whatever is returned, but a handler must return something.
        return web.Response(status=499)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(self.report())

    async def _post_faults(self, request: web.Request) -> web.Response:
        """Body: one plan object, or a list of them; answers the resulting report."""
        try:
            raw = orjson.loads(await request.read())
            plans = [FaultPlan.from_dict(item) for item in (raw if isinstance(raw, list) else [raw])]
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
            return _json({"detail": f"invalid fault plan: {exc}"}, status=400)
        for plan in plans:
            self.add(plan)
        return _json(self.report())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.clear()
        return _json(self.report())

    async def _on_shutdown(self, app: web.Application) -> None:
        self.release_hangs()


def standard_fault_mix() -> list[FaultPlan]:
    """The standard mix of a misbehaving vendor, until cleared: about 0.1% hangs, 1% connection resets, 3% 5xx and
    2% 429 with `Retry-After: 1`. Plans are tried in order, so each fraction is of the requests the earlier ones
    left; the fractions are set so that each share is of all requests."""
    shares: list[tuple[FaultKind, float]] = [("hang", 0.001), ("reset", 0.01), ("status", 0.03), ("rate_limit", 0.02)]
    plans, left = [], 1.0
    for kind, share in shares:
        plans.append(FaultPlan(kind, fraction=share / left, status=503, retry_after=1))
        left -= share
    return plans


def _reset_connection(request: web.Request) -> None:
    """Abort the request's TCP connection; SO_LINGER 0 makes the kernel send RST instead of FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _content_type(body: str) -> str:
    return "application/json" if body.lstrip().startswith(("{", "[")) else "text/plain"


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


__all__ = ["CONTROL_PREFIX", "FAULT_KINDS", "FaultInjector", "FaultKind", "FaultPlan", "standard_fault_mix"]
