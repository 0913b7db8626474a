"""The Enable3 sandbox's control API under `/_sandbox/enable3/` (the generic `/_sandbox/faults` routes: faults.py).

  GET  /_sandbox/enable3/received[?ids=1][&tenant=NAME]  counters, per-tenant counts (+ ids in arrival order)
  POST /_sandbox/enable3/keys        {"keys": {"<api key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/enable3/fail-ids    {"ids": ["...", ...], "status": 400}  those event ids get that 4xx ([] clears)
  POST /_sandbox/enable3/conflicts   {"enabled": true}  answer 409 to ids already stored (default: 201, counted)
  POST /_sandbox/enable3/reset       back to the startup state (keys, storage, counters, faults)
Every answer is the report of GET /_sandbox/enable3/received (without ids); invalid bodies get 400 {"detail": "..."}.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson
from aiohttp import web

from devkit.sandbox.control import (
    ControlledSandbox,
    add_vendor_control_routes,
    bad_request,
    read_field,
    read_strings,
    wants_ids,
)


class Enable3Controls(ControlledSandbox, Protocol):
    """What these routes drive of the Enable3 sandbox (Enable3Sandbox), which installs them: no import back."""

    conflict_on_duplicate: bool

    def report(self, *, include_ids: bool = False, tenant: str | None = None) -> dict[str, Any]: ...

    def set_fail_ids(self, ids: Iterable[str], status: int = 400) -> None: ...


def add_control_routes(app: web.Application, sandbox: Enable3Controls) -> None:
    """Register the `/_sandbox/enable3/*` routes operating on `sandbox`."""

    async def fail_ids(request: web.Request) -> None:
        ids = await read_strings(request, "ids")
        status = orjson.loads(await request.read()).get("status", 400)  # the body is cached and is an object
        if type(status) is not int or not 400 <= status <= 499:
            raise bad_request('"status" must be a 4xx code')
        sandbox.set_fail_ids(ids, status)

    async def conflicts(request: web.Request) -> None:
        value = await read_field(request, "enabled")
        if type(value) is not bool:
            raise bad_request('"enabled" must be true or false')
        sandbox.conflict_on_duplicate = value

    add_vendor_control_routes(
        app,
        "enable3",
        sandbox,
        received=lambda request: sandbox.report(include_ids=wants_ids(request), tenant=request.query.get("tenant")),
        settings={"fail-ids": fail_ids, "conflicts": conflicts},
    )


__all__ = ["add_control_routes"]
