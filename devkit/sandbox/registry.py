"""Every vendor stand-in of the devkit, by connector name: a new vendor adds its module here, on one line."""

from __future__ import annotations

from typing import Any

from devkit.sandbox.enable3.kind import KIND as ENABLE3
from devkit.sandbox.intarget.reader import KIND as INTARGET
from devkit.sandbox.kind import ReaderKind, SandboxKind
from devkit.sandbox.unibo.kind import KIND as UNIBO
from devkit.sandbox.userwise.kind import KIND as USERWISE

KINDS: tuple[SandboxKind[Any] | ReaderKind, ...] = (UNIBO, ENABLE3, USERWISE, INTARGET)

SANDBOXES: dict[str, SandboxKind[Any]] = {kind.name: kind for kind in KINDS if isinstance(kind, SandboxKind)}
"""Push vendors' sandboxes, served by `gateway sandbox` and the demo."""
READERS: dict[str, ReaderKind] = {kind.name: kind for kind in KINDS if isinstance(kind, ReaderKind)}
"""Pull vendors' readers, run by the demo."""
