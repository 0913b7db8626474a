"""The control routes every vendor sandbox shares (devkit/sandbox/control.py), over real HTTP for each vendor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from devkit.sandbox.enable3.sandbox import Enable3Sandbox
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.sandbox.userwise.sandbox import UserWiseSandbox

VENDORS: dict[str, tuple[Callable[[], Any], str, str]] = {
    # vendor -> (sandbox with key "k" for tenant "t", how the 400 names the keys, a list-of-strings setting)
    "unibo": (lambda: UniboSandbox({"k": "t"}), "api", "fail-items:unique_ids"),
    "enable3": (lambda: Enable3Sandbox({"k": "t"}), "api", "fail-ids:ids"),
    "userwise": (lambda: UserWiseSandbox({"k": "t"}), "app", "fail-uids:uids"),
}


async def _call(session: aiohttp.ClientSession, url: str, body: bytes | None = None) -> tuple[int, Any]:
    method = "GET" if body is None else "POST"
    async with session.request(method, url, data=body) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_keys_reset_and_bad_bodies_behave_alike_for_every_vendor(vendor: str) -> None:
    """keys replaces the keys and answers the report; bad bodies get 400 details; reset restores the startup keys."""
    build, key_kind, strings = VENDORS[vendor]
    sandbox = build()
    setting, field = strings.split(":")
    async with SandboxServer(sandbox.app()) as server, aiohttp.ClientSession() as session:
        base = f"{server.url}/_sandbox/{vendor}"
        status, report = await _call(session, f"{base}/keys", b'{"keys": {"new": "t2"}}')
        assert status == 200 and "faults" in report and sandbox.keys == {"new": "t2"}
        assert await _call(session, f"{base}/keys", b'{"keys": {"new": ""}}') == (
            400,
            {"detail": f'"keys" must map non-empty {key_kind} keys to non-empty tenant names'},
        )
        status, answer = await _call(session, f"{base}/keys", b"{not json")
        assert status == 400 and answer["detail"].startswith("invalid JSON: ")
        assert await _call(session, f"{base}/{setting}", b"[]") == (
            400,
            {"detail": f'expected a JSON object with "{field}"'},
        )
        assert await _call(session, f"{base}/{setting}", b'{"%s": "one"}' % field.encode()) == (
            400,
            {"detail": f'"{field}" must be a list of strings'},
        )
        status, report = await _call(session, f"{base}/reset", b"")
        assert status == 200 and sandbox.keys == {"k": "t"}
        status, received = await _call(session, f"{base}/received?ids=1")
        assert status == 200 and received == report
