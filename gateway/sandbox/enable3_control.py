"""The Enable3 sandbox's control API under `/_sandbox/enable3/` (the generic `/_sandbox/faults` routes: faults.py).

  GET  /_sandbox/enable3/received[?ids=1][&tenant=NAME]  counters, per-tenant counts (+ ids in arrival order)
  POST /_sandbox/enable3/keys        {"keys": {"<api key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/enable3/fail-ids    {"ids": ["...", ...], "status": 400}  those event ids get that 4xx ([] clears)
  POST /_sandbox/enable3/conflicts   {"enabled": true}  answer 409 to ids already stored (default: 201, counted)
  POST /_sandbox/enable3/reset       back to the startup state (keys, storage, counters, faults)
Every answer is the report of GET /_sandbox/enable3/received (without ids); invalid bodies get 400 {"detail": "..."}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from gateway.sandbox.unibo_control import _bad_request, _read_object, json_response

if TYPE_CHECKING:
    from gateway.sandbox.enable3 import Enable3Sandbox

_TRUE = frozenset({"1", "true", "yes"})


def add_control_routes(app: web.Application, sandbox: Enable3Sandbox) -> None:
    """Register the `/_sandbox/enable3/*` routes operating on `sandbox`."""

    async def received(request: web.Request) -> web.Response:
        include_ids = request.query.get("ids", "").lower() in _TRUE
        return json_response(sandbox.report(include_ids=include_ids, tenant=request.query.get("tenant")))

    async def keys(request: web.Request) -> web.Response:
        value = await _read_object(request, "keys")
        if type(value) is not dict or not all(type(k) is str and type(t) is str and k and t for k, t in value.items()):
            raise _bad_request('"keys" must map non-empty api keys to non-empty tenant names')
        sandbox.set_keys(value)
        return json_response(sandbox.report())

    async def fail_ids(request: web.Request) -> web.Response:
        value = await _read_object(request, "ids")
        if type(value) is not list or not all(type(i) is str for i in value):
            raise _bad_request('"ids" must be a list of strings')
        status = orjson.loads(await request.read()).get("status", 400)  # the body is cached and is an object
        if type(status) is not int or not 400 <= status <= 499:
            raise _bad_request('"status" must be a 4xx code')
        sandbox.set_fail_ids(value, status)
        return json_response(sandbox.report())

    async def conflicts(request: web.Request) -> web.Response:
        value = await _read_object(request, "enabled")
        if type(value) is not bool:
            raise _bad_request('"enabled" must be true or false')
        sandbox.conflict_on_duplicate = value
        return json_response(sandbox.report())

    async def reset(request: web.Request) -> web.Response:
        sandbox.reset()
        return json_response(sandbox.report())

    app.router.add_get("/_sandbox/enable3/received", received)
    app.router.add_post("/_sandbox/enable3/keys", keys)
    app.router.add_post("/_sandbox/enable3/fail-ids", fail_ids)
    app.router.add_post("/_sandbox/enable3/conflicts", conflicts)
    app.router.add_post("/_sandbox/enable3/reset", reset)


__all__ = ["add_control_routes"]
