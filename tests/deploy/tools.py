"""Shared helpers for the deploy/ tests: paths, and the external tools `make tools` provides (promtool, kubectl)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """Path of a tool: the project's .venv/bin first (where `make tools` extracts Debian's binaries), then PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise AssertionError(f"{name} not found: run `make tools` (it installs it from Debian's packages)")
    return found


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool; the result whatever its exit code (the caller asserts on it)."""
    return subprocess.run(  # noqa: PLW1510 - callers assert on returncode with the output in the message
        [tool(command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())
