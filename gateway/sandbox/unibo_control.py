"""The Unibo sandbox's control API under `/_sandbox/unibo/` (the generic `/_sandbox/faults` routes live in faults.py).

  GET  /_sandbox/unibo/received[?ids=1][&tenant=NAME]  counters, per-tenant counts (+ unique_ids in arrival order)
  POST /_sandbox/unibo/keys           {"keys": {"<api key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/unibo/fail-items     {"unique_ids": ["...", ...]}  batches containing them get 422 ([] clears)
  POST /_sandbox/unibo/partial-store  {"batches": N}  the next N valid batches get 510 and are half stored (0 clears)
  POST /_sandbox/unibo/reset          back to the startup state (keys, storage, counters, faults)
Every answer is the JSON report of GET /_sandbox/unibo/received (without ids); invalid bodies get 400 {"detail": "..."}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from gateway.sandbox.unibo import UniboSandbox

_TRUE = frozenset({"1", "true", "yes"})


def json_response(payload: object, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


async def _read_object(request: web.Request, key: str) -> Any:
    """The value of `key` in the request's JSON object body; a 400 response otherwise."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _bad_request(f"invalid JSON: {exc}") from exc
    if type(body) is not dict or key not in body:
        raise _bad_request(f'expected a JSON object with "{key}"')
    return body[key]


def _bad_request(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=orjson.dumps({"detail": detail}).decode(), content_type="application/json")


def add_control_routes(app: web.Application, sandbox: UniboSandbox) -> None:
    """Register the `/_sandbox/unibo/*` routes operating on `sandbox`."""

    async def received(request: web.Request) -> web.Response:
        include_ids = request.query.get("ids", "").lower() in _TRUE
        return json_response(sandbox.report(include_ids=include_ids, tenant=request.query.get("tenant")))

    async def keys(request: web.Request) -> web.Response:
        value = await _read_object(request, "keys")
        if type(value) is not dict or not all(type(k) is str and type(t) is str and k and t for k, t in value.items()):
            raise _bad_request('"keys" must map non-empty api keys to non-empty tenant names')
        sandbox.set_keys(value)
        return json_response(sandbox.report())

    async def fail_items(request: web.Request) -> web.Response:
        value = await _read_object(request, "unique_ids")
        if type(value) is not list or not all(type(u) is str for u in value):
            raise _bad_request('"unique_ids" must be a list of strings')
        sandbox.set_fail_items(value)
        return json_response(sandbox.report())

    async def partial_store(request: web.Request) -> web.Response:
        value = await _read_object(request, "batches")
        if type(value) is not int or value < 0:
            raise _bad_request('"batches" must be an integer >= 0')
        sandbox.set_partial_store(value)
        return json_response(sandbox.report())

    async def reset(request: web.Request) -> web.Response:
        sandbox.reset()
        return json_response(sandbox.report())

    app.router.add_get("/_sandbox/unibo/received", received)
    app.router.add_post("/_sandbox/unibo/keys", keys)
    app.router.add_post("/_sandbox/unibo/fail-items", fail_items)
    app.router.add_post("/_sandbox/unibo/partial-store", partial_store)
    app.router.add_post("/_sandbox/unibo/reset", reset)


__all__ = ["add_control_routes", "json_response"]
