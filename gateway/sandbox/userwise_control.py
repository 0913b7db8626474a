"""The UserWise sandbox's control API under `/_sandbox/userwise/` (generic `/_sandbox/faults` routes: faults.py).

  GET  /_sandbox/userwise/received[?ids=1][&player=ID]  counters, per-app counts (+ ids, + one player's timeline)
  POST /_sandbox/userwise/keys       {"keys": {"<plain app key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/userwise/secret     {"secret": "..."}  replace the company secret
  POST /_sandbox/userwise/fail-uids  {"uids": ["...", ...]}  requests holding them get 422 ([] clears)
  POST /_sandbox/userwise/reset      back to the startup state
Every answer is the JSON report of GET /_sandbox/userwise/received (without ids); invalid bodies get 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.sandbox.unibo_control import json_response

if TYPE_CHECKING:
    from gateway.sandbox.userwise import UserWiseSandbox

_TRUE = frozenset({"1", "true", "yes"})


def _bad_request(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=orjson.dumps({"detail": detail}).decode(), content_type="application/json")


async def _value(request: web.Request, key: str) -> Any:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _bad_request(f"invalid JSON: {exc}") from exc
    if type(body) is not dict or key not in body:
        raise _bad_request(f'expected a JSON object with "{key}"')
    return body[key]


def add_control_routes(app: web.Application, sandbox: UserWiseSandbox) -> None:
    """Register the `/_sandbox/userwise/*` routes operating on `sandbox`."""

    async def received(request: web.Request) -> web.Response:
        include_ids = request.query.get("ids", "").lower() in _TRUE
        return json_response(sandbox.report(include_ids=include_ids, player=request.query.get("player")))

    async def keys(request: web.Request) -> web.Response:
        value = await _value(request, "keys")
        if type(value) is not dict or not all(type(k) is str and type(t) is str and k and t for k, t in value.items()):
            raise _bad_request('"keys" must map non-empty app keys to non-empty tenant names')
        sandbox.set_keys(value)
        return json_response(sandbox.report())

    async def secret(request: web.Request) -> web.Response:
        value = await _value(request, "secret")
        if type(value) is not str or not value:
            raise _bad_request('"secret" must be a non-empty string')
        sandbox.set_secret(value)
        return json_response(sandbox.report())

    async def fail_uids(request: web.Request) -> web.Response:
        value = await _value(request, "uids")
        if type(value) is not list or not all(type(u) is str for u in value):
            raise _bad_request('"uids" must be a list of strings')
        sandbox.set_fail_uids(value)
        return json_response(sandbox.report())

    async def reset(request: web.Request) -> web.Response:
        sandbox.reset()
        return json_response(sandbox.report())

    app.router.add_get("/_sandbox/userwise/received", received)
    app.router.add_post("/_sandbox/userwise/keys", keys)
    app.router.add_post("/_sandbox/userwise/secret", secret)
    app.router.add_post("/_sandbox/userwise/fail-uids", fail_uids)
    app.router.add_post("/_sandbox/userwise/reset", reset)


__all__ = ["add_control_routes"]
