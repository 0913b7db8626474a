"""The UserWise sandbox's control API under `/_sandbox/userwise/` (generic `/_sandbox/faults` routes: faults.py).

  GET  /_sandbox/userwise/received[?ids=1][&player=ID]  counters, per-app counts (+ ids, + one player's timeline)
  POST /_sandbox/userwise/keys       {"keys": {"<plain app key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/userwise/secret     {"secret": "..."}  replace the company secret
  POST /_sandbox/userwise/fail-uids  {"uids": ["...", ...]}  requests holding them get 422 ([] clears)
  POST /_sandbox/userwise/reset      back to the startup state
Every answer is the JSON report of GET /_sandbox/userwise/received (without ids); invalid bodies get 400.
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


class UserWiseControls(ControlledSandbox, Protocol):
    """What these routes drive of the UserWise sandbox (UserWiseSandbox), which installs them: no import back."""

    def report(self, *, include_ids: bool = False, player: str | None = None) -> dict[str, Any]: ...

    def set_fail_uids(self, uids: Iterable[str]) -> None: ...

    def set_secret(self, secret: str) -> None: ...


def add_control_routes(app: web.Application, sandbox: UserWiseControls) -> None:
    """Register the `/_sandbox/userwise/*` routes operating on `sandbox`."""

    async def secret(request: web.Request) -> None:
        value = await read_field(request, "secret")
        if type(value) is not str or not value:
            raise bad_request('"secret" must be a non-empty string')
        sandbox.set_secret(value)

    async def fail_uids(request: web.Request) -> None:
        sandbox.set_fail_uids(await read_strings(request, "uids"))

    add_vendor_control_routes(
        app,
        "userwise",
        sandbox,
        received=lambda request: sandbox.report(include_ids=wants_ids(request), player=request.query.get("player")),
        settings={"secret": secret, "fail-uids": fail_uids},
        key_kind="app",
    )


__all__ = ["add_control_routes"]
