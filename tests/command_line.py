"""The `gateway` command line run in this process, as tests call it: no interpreter start per call."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import structlog

from gateway.cli import main


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Put structlog's and the root logger's configuration back as it was (commands configure logging for a process)."""
    root, aiokafka = logging.getLogger(), logging.getLogger("aiokafka")
    handlers, level, aiokafka_level = root.handlers[:], root.level, aiokafka.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        aiokafka.setLevel(aiokafka_level)
        structlog.configure(**config)


def gateway(*argv: str) -> int:
    """Run `gateway ARGV` in this process; its exit status, including argparse's exits (usage errors, --version).

    Output goes to sys.stdout and sys.stderr as in a process; read it with capsys."""
    with logging_kept():
        try:
            return main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
            return code if isinstance(code, int) else (0 if code is None else 1)
