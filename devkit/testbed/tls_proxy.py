"""TLS termination in front of Tansu (which cannot serve TLS): a relay thread unwraps TLS onto its loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.testbed.process import BrokerError

_TLS_HANDSHAKE_TIMEOUT_S = 10.0
_QUIESCE_TIMEOUT_S = 5.0
_QUIESCE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """Server certificate and key (PEM) for the broker's TLS listener; `client_ca_file` turns on mutual TLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class TlsTerminator:
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
                await asyncio.wait(others, timeout=_QUIESCE_POLL_S)
            else:
                await asyncio.sleep(0)  # connection_lost callbacks (which close the sockets) still to run


class _TlsClient(asyncio.Protocol):
    """One client connection: TLS towards the client, plaintext towards Tansu."""

    def __init__(self, terminator: TlsTerminator) -> None:
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
