"""A local S3 server (moto's `moto_server`) that gives the embedded broker storage surviving a Tansu restart."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devkit.testbed.ports import free_port
from devkit.testbed.process import stop_process

BUCKET = "tansu"
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testbed", "AWS_SECRET_ACCESS_KEY": "testbed", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Error(RuntimeError):
    """The local S3 server could not be started or the bucket created."""


class LocalS3:
    """`moto_server` on a free loopback port with one bucket; `tansu_env()` is what Tansu's s3:// engine needs.

    Needs the demo extra's `moto[server]`. The data lives in the server's memory: it outlives Tansu restarts, not this
    object. `popen` starts the child (the test bed passes its own, which makes the child die with this process).
    """

    def __init__(self, log_path: Path, host: str = "127.0.0.1", bucket: str = BUCKET) -> None:
        self.host = host
        self.bucket = bucket
        self._log_path = log_path
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint, http://host:port."""
        return f"http://{self.host}:{self.port}"

    def start(self, popen: Callable[..., subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
        """Start the server, wait until it answers, and create the bucket (HTTP PUT /bucket)."""
        try:
            import moto.server  # noqa: F401, PLC0415 - only to name the missing extra in the error
        except ImportError as exc:
            raise S3Error("the persistent test broker needs moto[server] (the project's demo extra)") from exc
        self.port = free_port(self.host)
        args = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        with self._log_path.open("ab") as log:
            self._proc = popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise S3Error(f"moto_server exited with status {self._proc.returncode}; see {self._log_path}")
            try:
                request = urllib.request.Request(f"{self.url}/{self.bucket}", method="PUT")  # noqa: S310 - loopback
                with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - loopback only
                    if answer.status == 200:
                        return
                    last = f"HTTP {answer.status}"
            except (OSError, urllib.error.URLError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise S3Error(f"moto_server did not create the bucket within {timeout:.0f}s (last: {last})")

    def tansu_env(self) -> dict[str, str]:
        """Environment for `tansu broker --storage-engine s3://BUCKET/`."""
        return {**_CREDENTIALS, "AWS_ENDPOINT": self.url, "AWS_ALLOW_HTTP": "true"}

    @property
    def storage_engine(self) -> str:
        """Tansu's --storage-engine value."""
        return f"s3://{self.bucket}/"

    def stop(self, grace: float = 3.0) -> None:
        """Stop the server (idempotent); the stored data is gone."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, grace)
