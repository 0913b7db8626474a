"""A lean HTTP/1.1 client for vendor requests: pooled keep-alive connections, TLS, and a bounded response reader.

aiohttp's client spends about 60 µs of CPU on a request (session, request and response objects, tracing, cookies,
stream readers); this one spends about 20. It does only what a vendor request needs: one request at a time per
connection, a body of known length, and an answer framed by Content-Length, chunked coding or the connection's end,
read up to a cap. Anything a server sends outside that (oversized or malformed heads, conflicting lengths, bytes no
request asked for) fails the request and closes the connection rather than being guessed at.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import cast

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.immutable import immutable

MAX_HEAD_BYTES = 64 * 1024
"""A response's status line and header fields together are at most this long."""
MAX_HEADER_FIELDS = 128
MAX_CHUNK_LINE = 4096
"""A chunk-size line (with its extensions), or a trailer field, is at most this long."""
KEEPALIVE_SECONDS = 30.0
"""An idle connection is not reused after this long: servers close theirs at about this age."""
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Set by the client from the request itself: a caller's value would contradict the framing."""
_FORBIDDEN_IN_HEADERS = str.maketrans("", "", "\r\n\0")
_BODYLESS_STATUSES = frozenset({204, 304})
_URL_CACHE_SIZE = 1024


@immutable
class WireUrl:
    """An absolute URL already in the exact form that goes on the wire: its origin (`scheme://authority`, a URL the
    caller parsed once) and its request target (path and query). A caller that builds many URLs under one origin,
    and signs their text, hands them over with no URL object built, parsed or re-quoted per request."""

    origin: URL
    target: str

    def url(self) -> URL:
        """The same URL as a yarl URL, as it is (for aiohttp, through a proxy)."""
        path, _, query = self.target.partition("?")
        origin = self.origin
        return URL.build(
            scheme=origin.scheme, authority=origin.raw_authority, path=path, query_string=query, encoded=True
        )

    def __str__(self) -> str:
        return f"{self.origin}{self.target}"


class InvalidResponse(Exception):
    """The server's bytes are not a well-framed HTTP/1.1 response within the limits."""


class ServerDisconnected(ConnectionError):
    """The connection closed before the whole response came."""


class Answer:
    """A complete response: status, header fields, body (up to the cap) and whether the body was cut at the cap."""

    __slots__ = ("body", "headers", "status", "truncated")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes, truncated: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.truncated = truncated


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _IDLE = range(8)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, reading the answer to the one request in flight on it."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._state = _IDLE
        self._head_only = False
        self._status = 0
        self._headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        self._body = bytearray()
        self._left = 0  # bytes of the body (or of the current chunk) still to come
        self._truncated = False
        self._steps = self._reading_steps()

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        if self._state == _IDLE:  # bytes no request asked for: the connection cannot be trusted any more
            self.close()
            return
        self._buffer += data
        try:
            self._advance()
        except InvalidResponse as error:
            self._fail(error)

    def eof_received(self) -> bool | None:
        self.reusable = False
        return None  # close the transport; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.waiter is None or self.waiter.done():
            return
        if self._state == _UNTIL_CLOSE and exc is None:  # the connection's end is the body's end
            self._finish()
            return
        error = exc if exc is not None else ServerDisconnected()
        self._fail(error)

    # -- the request --------------------------------------------------------------------------------------------

    def send(self, data: bytes, body: bytes | None, *, head_only: bool) -> asyncio.Future[Answer]:
        """Write one request and return the future of its answer."""
        assert self.transport is not None and self._state == _IDLE
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self._state = _HEAD
        self._head_only = head_only
        self._truncated = False
        try:
            if body is None:
                self.transport.write(data)
            elif len(body) <= 16 * 1024:
                self.transport.write(data + body)
            else:  # no copy of a large batch just to prepend its head
                self.transport.write(data)
                self.transport.write(body)
        except RuntimeError as error:  # uvloop refuses a write to a transport that closed meanwhile
            raise ServerDisconnected() from error
        return waiter

    def close(self) -> None:
        """Close the connection; an answer still awaited fails."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        """Drop the connection at once (a timeout or a cancelled request: the answer may still be on its way)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True

    # -- reading the answer -------------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Read as far as the buffer goes: each step consumes what it can and says whether to go on."""
        steps = self._steps
        while steps[self._state](self._buffer):
            pass

    def _reading_steps(self) -> tuple[Callable[[bytearray], bool], ...]:
        """The step for each state, in the order of the state numbers."""
        return (
            self._read_head,
            self._read_length,
            self._read_chunk_size,
            self._read_chunk_data,
            self._read_chunk_end,
            self._read_trailers,
            self._read_until_close,
            self._read_past_answer,
        )

    def _read_head(self, buffer: bytearray) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD_BYTES:
            if len(buffer) > MAX_HEAD_BYTES:
                raise InvalidResponse("response head too long")
            return False
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self._start(head)
        return True

    def _read_length(self, buffer: bytearray) -> bool:
        self._take(min(self._left, len(buffer)))
        if self._left == 0 or self._truncated:
            self._finish()
        return False

    def _read_until_close(self, buffer: bytearray) -> bool:
        self._take(len(buffer))
        if self._truncated:
            self._finish()
        return False

    def _read_chunk_size(self, buffer: bytearray) -> bool:
        line = _line(buffer, "chunk size line")
        if line is None:
            return False
        self._left = _chunk_size(line)
        self._state = _CHUNK_DATA if self._left else _TRAILERS
        return True

    def _read_chunk_data(self, buffer: bytearray) -> bool:
        self._take(min(self._left, len(buffer)))
        if self._truncated:
            self._finish()
            return False
        if self._left:
            return False
        self._state = _CHUNK_END
        return True

    def _read_chunk_end(self, buffer: bytearray) -> bool:
        if len(buffer) < 2:
            return False
        if buffer[:2] != b"\r\n":
            raise InvalidResponse("chunk not followed by CRLF")
        del buffer[:2]
        self._state = _CHUNK_SIZE
        return True

    def _read_trailers(self, buffer: bytearray) -> bool:
        """Trailer fields are read and dropped; an empty line ends them, and the answer."""
        line = _line(buffer, "trailer field")
        if line is None:
            return False
        if not line:
            self._finish()
            return False
        return True

    def _read_past_answer(self, buffer: bytearray) -> bool:
        """Nothing more to read: bytes left after a finished answer were judged by `_finish` (not reused)."""
        return False

    def _start(self, head: bytes) -> None:
        """The status line and header fields; sets how the body is framed. An interim (1xx) answer is skipped."""
        lines = head.decode("latin-1").split("\r\n")
        status = _status(lines[0])
        if len(lines) - 1 > MAX_HEADER_FIELDS:
            raise InvalidResponse("too many header fields")
        fields = [_field(line) for line in lines[1:]]
        if status < 200:
            if status == 101:
                raise InvalidResponse("unexpected protocol switch")
            return
        self._status = status
        self._headers = headers = CIMultiDictProxy(CIMultiDict(fields))
        self._body = bytearray()
        if lines[0].startswith("HTTP/1.0") or "close" in headers.get("Connection", "").lower():
            self.reusable = False
        self._frame(status, headers)

    def _frame(self, status: int, headers: CIMultiDictProxy[str]) -> None:
        """How the body ends: at its length, at the last chunk, or at the connection's end (RFC 9112 section 6.3)."""
        codings = headers.getall("Transfer-Encoding", None)
        lengths = {part.strip(" \t") for value in headers.getall("Content-Length", ()) for part in value.split(",")}
        self._left = 0
        if self._head_only or status in _BODYLESS_STATUSES:
            self._state = _LENGTH
        elif codings:
            if lengths:
                self.reusable = False  # conflicting framing: the coding wins, and the connection goes
            chunked = codings[-1].rsplit(",", 1)[-1].strip(" \t").lower() == "chunked"
            self._state = _CHUNK_SIZE if chunked else _UNTIL_CLOSE
            self.reusable = self.reusable and chunked
        elif lengths:
            if len(lengths) != 1:
                raise InvalidResponse("conflicting Content-Length values")
            (length,) = lengths
            if not (length.isdigit() and length.isascii()) or len(length) > 18:
                raise InvalidResponse("invalid Content-Length")
            self._state = _LENGTH
            self._left = int(length)
        else:
            self._state = _UNTIL_CLOSE
            self.reusable = False

    def _take(self, size: int) -> None:
        """Move `size` bytes of the buffer to the body, up to the cap."""
        room = self._cap - len(self._body)
        if size > room:
            self._body += self._buffer[:room]
            self._truncated = True
            self.reusable = False  # the rest of the body is never read
        else:
            self._body += self._buffer[:size]
        del self._buffer[:size]
        self._left -= size

    def _finish(self) -> None:
        self._state = _IDLE
        body = bytes(self._body)
        self._body = bytearray()
        if self._buffer:
            self.reusable = False
        truncated = self._truncated
        headers = self._headers
        encoding = headers.get("Content-Encoding", "").lower() if body else ""
        if encoding in ("gzip", "deflate"):
            body, truncated = _decoded(body, encoding, self._cap, truncated)
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, headers, body, truncated))

    def _fail(self, error: BaseException) -> None:
        self.close()
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def _status(line: str) -> int:
    """The status code of an `HTTP/1.x NNN reason` line."""
    code = line[9:12]
    if (
        not line.startswith(("HTTP/1.1 ", "HTTP/1.0 "))
        or not (code.isdigit() and code.isascii())
        or (len(line) > 12 and line[12] != " ")
        or code[0] == "0"
    ):
        raise InvalidResponse("not an HTTP/1.x status line")
    return int(code)


def _field(line: str) -> tuple[str, str]:
    """A header field's name and value; no whitespace may stand in the name or before its colon."""
    name, colon, value = line.partition(":")
    if not colon or not name or " " in name or "\t" in name:
        raise InvalidResponse("invalid header field")
    return name, value.strip(" \t")


def _line(buffer: bytearray, what: str) -> bytes | None:
    """The next CRLF-ended line, taken from the buffer; None until it has come whole."""
    end = buffer.find(b"\r\n")
    if end < 0 or end > MAX_CHUNK_LINE:
        if len(buffer) > MAX_CHUNK_LINE:
            raise InvalidResponse(f"{what} too long")
        return None
    line = bytes(buffer[:end])
    del buffer[: end + 2]
    return line


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip(b" \t")
    if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
        raise InvalidResponse("invalid chunk size")
    return int(size, 16)


def _decoded(body: bytes, encoding: str, cap: int, truncated: bool) -> tuple[bytes, bool]:
    """A gzip or deflate body decoded, to at most `cap` bytes (a small compressed answer can expand a thousandfold)."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        decoded = decoder.decompress(body, cap)
    except zlib.error as error:
        raise InvalidResponse("invalid compressed body") from error
    return decoded, truncated or bool(decoder.unconsumed_tail)


class _Origin:
    """The pool of one scheme, host and port: idle connections (newest first) and requests waiting for one."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.host_field = _host_field(scheme, host, port)
        self.idle: list[_Connection] = []
        self.opened = 0
        self.waiting: deque[asyncio.Future[None]] = deque()


class Http1Client:
    """Requests to any origin over at most `pool_size` connections per origin; connections are kept alive between
    requests. A request that fails or is cancelled closes its connection, so an answer never reaches the next one."""

    def __init__(self, tls: ssl.SSLContext | bool, *, pool_size: int, cap: int, user_agent: str) -> None:
        if tls is False:  # verification turned off by configuration
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._tls = context
        else:
            self._tls = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context()
        self._pool_size = pool_size
        self._cap = cap
        self._agent = f"User-Agent: {user_agent}\r\n".encode("latin-1")
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}
        self._wire_origins: dict[int, tuple[URL, _Origin]] = {}  # by the origin URL's id: the entry holds it
        self._fields: dict[int, tuple[Mapping[str, str], bytes]] = {}

    async def request(
        self,
        method: str,
        url: str | URL | WireUrl,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        within: float,
    ) -> Answer:
        """Send one request and read its answer within `within` seconds, from waiting for a connection to the
        answer's last byte. Raises TimeoutError, OSError (ssl.SSLError among them), ServerDisconnected or
        InvalidResponse; ValueError for a URL or header the client cannot send."""
        origin, target = self._target(url)
        head = b"".join(
            (
                method.encode("ascii"),
                b" ",
                target,
                b" HTTP/1.1\r\nHost: ",
                origin.host_field,
                b"\r\n",
                self._agent,
                b"Accept-Encoding: identity\r\n",
                self._encoded(headers) if headers else b"",
                b"Content-Length: %d\r\n\r\n" % len(body) if body is not None else b"\r\n",
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        connection = None
        while origin.idle:
            connection = origin.idle.pop()
            if _alive(connection):
                break
            self._discard(origin, connection)
            connection = None
        if connection is None:
            async with asyncio.timeout_at(deadline):
                connection = await self._connect(origin)
        try:  # from here on the connection goes back to the pool, or is dropped and leaves it: never neither
            waiter = connection.send(head, body, head_only=method == "HEAD")
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                answer = await waiter
            finally:
                timer.cancel()
        except BaseException:
            connection.abort()
            self._discard(origin, connection)
            raise
        self._release(origin, connection)
        return answer

    async def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends. The client stays usable."""
        for origin in self._origins.values():
            for connection in origin.idle:
                connection.close()
                origin.opened -= 1
            origin.idle.clear()

    # -- the pool -----------------------------------------------------------------------------------------------

    async def _connect(self, origin: _Origin) -> _Connection:
        """A fresh connection once the origin has room for one; an idle one if another request frees it first."""
        while origin.opened >= self._pool_size:
            waiter = asyncio.get_running_loop().create_future()
            origin.waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    _wake(origin)  # pass the turn this request was given to the next one
                else:
                    origin.waiting.remove(waiter)
                raise
            while origin.idle:
                connection = origin.idle.pop()
                if _alive(connection):
                    return connection
                self._discard(origin, connection)
        origin.opened += 1
        try:
            tls = self._tls if origin.scheme == "https" else None
            _, connection = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self._cap),
                origin.host,
                origin.port,
                ssl=tls,
                server_hostname=origin.host if tls else None,
            )
        except BaseException:
            origin.opened -= 1
            _wake(origin)
            raise
        return connection

    def _release(self, origin: _Origin, connection: _Connection) -> None:
        if connection.reusable and not connection.closed:
            connection.idle_since = time.monotonic()
            origin.idle.append(connection)
            _wake(origin)
        else:
            connection.close()
            self._discard(origin, connection)

    def _discard(self, origin: _Origin, connection: _Connection) -> None:
        connection.close()
        origin.opened -= 1
        _wake(origin)

    # -- request heads ------------------------------------------------------------------------------------------

    def _target(self, url: str | URL | WireUrl) -> tuple[_Origin, bytes]:
        """The origin and the request target (path and query, in wire form). A string URL is normalized by yarl, as
        aiohttp does; the last `_URL_CACHE_SIZE` strings are remembered. A WireUrl's target goes as it is."""
        if isinstance(url, WireUrl):
            entry = self._wire_origins.get(id(url.origin))
            if entry is None or entry[0] is not url.origin:
                if len(self._wire_origins) >= _URL_CACHE_SIZE:
                    self._wire_origins.clear()
                entry = self._wire_origins[id(url.origin)] = (url.origin, self._origin(url.origin))
            return entry[1], _sendable(url.target.encode("ascii"))
        key = url if isinstance(url, str) else None
        if key is not None:
            cached = self._targets.get(key)
            if cached is not None:
                return cached
            url = URL(key)
        assert isinstance(url, URL)
        origin = self._origin(url)
        target = _sendable((url.raw_path_qs or "/").encode("ascii"))
        if key is not None:
            if len(self._targets) >= _URL_CACHE_SIZE:
                self._targets.clear()
            self._targets[key] = (origin, target)
        return origin, target

    def _origin(self, url: URL) -> _Origin:
        """The pool of `url`'s scheme, host and port; ValueError unless it is an absolute http or https URL."""
        scheme = url.scheme
        if scheme not in ("http", "https") or not url.raw_host:
            raise ValueError("only absolute http and https URLs can be requested")
        port = url.port or (443 if scheme == "https" else 80)
        origin_key = (scheme, url.raw_host, port)
        origin = self._origins.get(origin_key)
        if origin is None:
            origin = self._origins[origin_key] = _Origin(scheme, url.raw_host, port)
        return origin

    def _encoded(self, headers: Mapping[str, str]) -> bytes:
        """The caller's header fields in wire form. Read-only mappings (a tenant's headers, built once) are encoded
        once; a plain dict every time, since its caller may change it between requests (a refreshed token)."""
        frozen = isinstance(headers, CIMultiDictProxy | MappingProxyType)
        cached = self._fields.get(id(headers)) if frozen else None
        if cached is not None and cached[0] is headers:
            return cached[1]
        lines = []
        for name, value in headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"the {name} header is set by the client")
            if name.translate(_FORBIDDEN_IN_HEADERS) != name or ":" in name or not name.strip():
                raise ValueError("a header name holds characters that cannot be sent")
            if value.translate(_FORBIDDEN_IN_HEADERS) != value:
                raise ValueError(f"the {name} header's value holds line breaks")  # never the value: it may be a key
            lines.append(f"{name}: {value}\r\n")
        encoded = "".join(lines).encode("utf-8")
        if frozen:
            if len(self._fields) >= _URL_CACHE_SIZE:
                self._fields.clear()
            self._fields[id(headers)] = (headers, encoded)
        return encoded


def _sendable(target: bytes) -> bytes:
    """`target` if it can go in a request line; ValueError for spaces and control characters."""
    if not target.startswith(b"/") or target != target.translate(None, b" \r\n\0\t"):
        raise ValueError("the URL's path holds characters that cannot be sent")
    return target


def _host_field(scheme: str, host: str, port: int) -> bytes:
    """The Host header's value: the port only when it is not the scheme's default, an IPv6 address in brackets."""
    host = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return (host if port == default else f"{host}:{port}").encode("ascii")


def _alive(connection: _Connection) -> bool:
    """Whether an idle connection may carry another request: open, and not idle past the keep-alive time."""
    transport = connection.transport
    return (
        not connection.closed
        and connection.reusable
        and transport is not None
        and not transport.is_closing()
        and time.monotonic() - connection.idle_since <= KEEPALIVE_SECONDS
    )


def _expire(waiter: asyncio.Future[Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _wake(origin: _Origin) -> None:
    """Give the next waiting request its turn."""
    while origin.waiting:
        waiter = origin.waiting.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
