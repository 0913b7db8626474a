"""The Unibo sandbox's control API under `/_sandbox/unibo/` (the generic `/_sandbox/faults` routes live in faults.py).

  GET  /_sandbox/unibo/received[?ids=1][&tenant=NAME]  counters, per-tenant counts (+ unique_ids in arrival order)
  POST /_sandbox/unibo/keys           {"keys": {"<api key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/unibo/fail-items     {"unique_ids": ["...", ...]}  batches containing them get 422 ([] clears)
  POST /_sandbox/unibo/partial-store  {"batches": N}  the next N valid batches get 510 and are half stored (0 clears)
  POST /_sandbox/unibo/reset          back to the startup state (keys, storage, counters, faults)
Every answer is the JSON report of GET /_sandbox/unibo/received (without ids); invalid bodies get 400 {"detail": "..."}.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from aiohttp import web

from devkit.sandbox.control import (
    ControlledSandbox,
    add_vendor_control_routes,
    bad_request,
    read_field,
    read_strings,
    wants_ids,
)


class UniboControls(ControlledSandbox, Protocol):
    """What these routes drive of the Unibo sandbox (UniboSandbox), which installs them: no import back."""

    def report(self, *, include_ids: bool = False, tenant: str | None = None) -> dict[str, Any]: ...

    def set_fail_items(self, unique_ids: Iterable[str]) -> None: ...

    def set_partial_store(self, batches: int) -> None: ...


def add_control_routes(app: web.Application, sandbox: UniboControls) -> None:
    """Register the `/_sandbox/unibo/*` routes operating on `sandbox`."""

    async def fail_items(request: web.Request) -> None:
        sandbox.set_fail_items(await read_strings(request, "unique_ids"))

    async def partial_store(request: web.Request) -> None:
        value = await read_field(request, "batches")
        if type(value) is not int or value < 0:
            raise bad_request('"batches" must be an integer >= 0')
        sandbox.set_partial_store(value)

    add_vendor_control_routes(
        app,
        "unibo",
        sandbox,
        received=lambda request: sandbox.report(include_ids=wants_ids(request), tenant=request.query.get("tenant")),
        settings={"fail-items": fail_items, "partial-store": partial_store},
    )


__all__ = ["add_control_routes"]
