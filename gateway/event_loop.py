"""The event loop the gateway's processes run on: uvloop by default, asyncio's own with GATEWAY_EVENT_LOOP=asyncio."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOPS = ("uvloop", "asyncio")
"""GATEWAY_EVENT_LOOP's values. uvloop (libuv under asyncio's API) takes a few percent less CPU per vendor request
(bench/cpu_per_request.py); asyncio's own loop is there to compare, or should uvloop ever get in the way."""


def chosen() -> str:
    """The loop GATEWAY_EVENT_LOOP names; when unset, uvloop if it is installed (it is not on Windows or PyPy), else
    asyncio. ValueError for any other value, or for uvloop where it is not installed."""
    installed = importlib.util.find_spec("uvloop") is not None
    name = os.environ.get("GATEWAY_EVENT_LOOP", "").strip().lower() or ("uvloop" if installed else "asyncio")
    if name not in LOOPS:
        raise ValueError(f"GATEWAY_EVENT_LOOP={name!r}: use one of {', '.join(LOOPS)}")
    if name == "uvloop" and not installed:
        raise ValueError("GATEWAY_EVENT_LOOP=uvloop, but uvloop is not installed on this platform")
    return name


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop function for `name`."""
    if name == "uvloop":
        import uvloop  # noqa: PLC0415 - only the processes that run on it load it

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str | None = None) -> T:
    """asyncio.run on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(name or chosen())) as runner:
        return runner.run(main)
