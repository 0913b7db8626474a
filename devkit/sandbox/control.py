"""The control-API plumbing the vendor sandboxes share under `/_sandbox/<vendor>/` (each `<vendor>_control.py` uses it).

  GET  /_sandbox/<vendor>/received[?ids=1][&...]  the sandbox's report (the vendor picks its filter parameter)
  POST /_sandbox/<vendor>/keys       {"keys": {"<key>": "<tenant>", ...}}  replace the accepted keys
  POST /_sandbox/<vendor>/<setting>  the vendor's own settings (faults it can be told to answer)
  POST /_sandbox/<vendor>/reset      back to the startup state
Every POST answers with the report (without ids); invalid bodies get 400 {"detail": "..."}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

_TRUE = frozenset({"1", "true", "yes"})

Setting = Callable[[web.Request], Awaitable[None]]  # reads the request's body and applies it to the sandbox


class ControlledSandbox(Protocol):
    """What the shared routes need of a vendor sandbox."""

    def report(self) -> dict[str, Any]: ...

    def set_keys(self, keys: Mapping[str, str]) -> None: ...

    def reset(self) -> None: ...


def json_response(payload: object, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def bad_request(detail: str) -> web.HTTPBadRequest:
    """The 400 a control route raises for an invalid body: `{"detail": detail}`."""
    return web.HTTPBadRequest(text=orjson.dumps({"detail": detail}).decode(), content_type="application/json")


async def read_field(request: web.Request, key: str) -> Any:
    """The value of `key` in the request's JSON object body; raises a 400 otherwise."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"invalid JSON: {exc}") from exc
    if type(body) is not dict or key not in body:
        raise bad_request(f'expected a JSON object with "{key}"')
    return body[key]


async def read_strings(request: web.Request, key: str) -> list[str]:
    """The list of strings under `key` in the request's JSON object body; raises a 400 otherwise."""
    value = await read_field(request, key)
    if type(value) is not list or not all(type(item) is str for item in value):
        raise bad_request(f'"{key}" must be a list of strings')
    return value


def wants_ids(request: web.Request) -> bool:
    """Whether `?ids=1` (or true/yes) asks the received report to list ids."""
    return request.query.get("ids", "").lower() in _TRUE


def add_vendor_control_routes(
    app: web.Application,
    vendor: str,
    sandbox: ControlledSandbox,
    *,
    received: Callable[[web.Request], dict[str, Any]],
    settings: Mapping[str, Setting],
    key_kind: str = "api",
) -> None:
    """Register `/_sandbox/<vendor>/` received, keys, each of `settings` (path -> setter) and reset on `app`.

    `received` builds the GET report from the request's query; `key_kind` names the keys in the 400 detail.
    """
    prefix = f"/_sandbox/{vendor}/"

    async def get_received(request: web.Request) -> web.Response:
        return json_response(received(request))

    async def set_keys(request: web.Request) -> None:
        value = await read_field(request, "keys")
        if type(value) is not dict or not all(type(k) is str and type(t) is str and k and t for k, t in value.items()):
            raise bad_request(f'"keys" must map non-empty {key_kind} keys to non-empty tenant names')
        sandbox.set_keys(value)

    async def reset(request: web.Request) -> None:
        sandbox.reset()

    def answering_report(setting: Setting) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            await setting(request)
            return json_response(sandbox.report())

        return handle

    app.router.add_get(prefix + "received", get_received)
    for path, setting in {"keys": set_keys, **settings, "reset": reset}.items():
        app.router.add_post(prefix + path, answering_report(setting))


__all__ = [
    "ControlledSandbox",
    "Setting",
    "add_vendor_control_routes",
    "bad_request",
    "json_response",
    "read_field",
    "read_strings",
    "wants_ids",
]
