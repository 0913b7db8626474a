"""The lean HTTP/1.1 client against a scripted server: framing, keep-alive, the cap, hostile answers, timeouts, pool."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop
from yarl import URL

from devkit.testbed.broker import make_throwaway_pki
from gateway.http1 import Http1Client, InvalidResponse, ServerDisconnected, WireUrl

CAP = 64 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Script = Callable[[int, bytes], bytes | None]
"""The answer to the n-th request (counted over all connections) with the given head; None closes the connection."""


class ScriptedServer:
    """A raw TCP server that reads each request (head and Content-Length body) and writes the script's bytes."""

    def __init__(
        self, script: Script, *, delay: float = 0.0, tls: ssl.SSLContext | None = None, close_after: bool = False
    ) -> None:
        self.script = script
        self.delay = delay
        self.tls = tls
        self.close_after = close_after  # close each connection once it has answered, without saying so
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                number = len(self.heads)
                self.heads.append(head)
                self.bodies.append(body)
                if self.delay:
                    await asyncio.sleep(self.delay)
                answer = self.script(number, head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedServer]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        async with server:
            yield self
            server.close()


def _client(pool_size: int = 4, tls: ssl.SSLContext | bool = True) -> Http1Client:
    return Http1Client(tls, pool_size=pool_size, cap=CAP, user_agent="event-gateway/test")


async def _in_a_row(server: ScriptedServer, count: int) -> list[tuple[int, bytes]]:
    """`count` requests one after the other to `server` (started here), by one client; the answers."""
    async with server.running():
        client = _client()
        answers = [await _get(client, server.url) for _ in range(count)]
        await client.close()
    return answers


async def _get(client: Http1Client, url: str, body: bytes | None = None, within: float = 5.0) -> tuple[int, bytes]:
    answer = await client.request("POST", url + "/p", body, {"X-Api-Key": "k"}, within)
    return answer.status, answer.body


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_keep_alive_requests_share_one_connection_on_either_loop(loop: str) -> None:
    """Five requests one after the other go over one connection, each head carrying the Host, the caller's headers
    and the body's length; on asyncio's loop and on uvloop's (whose transports are not asyncio's classes)."""

    async def scenario() -> None:
        server = ScriptedServer(lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-N: %d\r\n\r\nn=%d" % (n, n))
        async with server.running():
            client = _client()
            for n in range(5):
                answer = await client.request("POST", server.url + "/api?q=1", b"body%d" % n, {"X-Api-Key": "k"}, 5)
                assert (answer.status, answer.body, answer.headers["x-n"]) == (200, b"n=%d" % n, str(n))
            await client.close()
        assert server.connections == 1
        port = server.url.rsplit(":", 1)[1]
        assert server.heads[0].startswith(b"POST /api?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n" % port.encode())
        assert b"X-Api-Key: k\r\n" in server.heads[0]
        assert b"Content-Length: 5\r\n" in server.heads[0]
        assert server.bodies == [b"body%d" % n for n in range(5)]

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())


async def test_a_chunked_answer_with_extensions_and_trailers_is_joined_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
    )
    server = ScriptedServer(lambda n, head: chunked)
    assert await _in_a_row(server, 2) == [(200, b"wikipedia")] * 2
    assert server.connections == 1


async def test_an_answer_ended_by_the_connection_is_whole_and_its_connection_not_reused() -> None:
    server = ScriptedServer(lambda n, head: b"HTTP/1.1 500 Oops\r\n\r\nthe rest%d" % n, close_after=True)
    assert await _in_a_row(server, 2) == [(500, b"the rest0"), (500, b"the rest1")]
    assert server.connections == 2


async def test_interim_answers_are_skipped_and_bodyless_statuses_read_no_body() -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + OK,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
        OK,
    ]
    server = ScriptedServer(lambda n, head: answers[n])
    assert await _in_a_row(server, len(answers)) == [(200, b"ok"), (204, b""), (304, b""), (200, b"ok")]
    assert server.connections == 1


async def test_a_head_request_reads_no_body_though_a_length_is_stated() -> None:
    server = ScriptedServer(lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" if n == 0 else OK)
    async with server.running():
        client = _client()
        answer = await client.request("HEAD", server.url + "/", None, None, 5)
        assert (answer.status, answer.body) == (200, b"")
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
    assert server.connections == 1


@pytest.mark.parametrize(
    ("answer", "connections"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (5 * CAP) + b"x" * (5 * CAP), 2),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n" % 1000 + b"x" * 1000 + b"\r\n" for _ in range(5 * CAP // 1000))
            + b"0\r\n\r\n",
            2,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(gzip.compress(b"x" * 5 * CAP))
            + gzip.compress(b"x" * 5 * CAP),
            1,  # the small compressed body was read whole: only its decoding stopped at the cap
        ),
    ],
    ids=["stated-length", "chunked", "gzip-bomb"],
)
async def test_an_answer_past_the_cap_is_cut_there_and_its_connection_closed(answer: bytes, connections: int) -> None:
    """Five times the cap, stated, chunked or as a small gzip body that decodes to it: the body is the first `cap`
    bytes, marked truncated. A body cut while reading closes its connection (the rest was never read), so the next
    request takes a fresh one."""
    server = ScriptedServer(lambda n, head: answer if n == 0 else OK)
    async with server.running():
        client = _client()
        first = await client.request("POST", server.url + "/", b"", None, 5)
        assert (first.status, first.body, first.truncated) == (200, b"x" * CAP, True)
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
    assert server.connections == connections


async def test_a_gzip_answer_is_decoded() -> None:
    body = gzip.compress(b'{"ok":true}')
    server = ScriptedServer(
        lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    assert await _in_a_row(server, 1) == [(200, b'{"ok":true}')]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024),  # never ends
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 7\r\n\r\nnot gz!",
        b"".join(b"X-%d: v\r\n" % i for i in range(200)).join([b"HTTP/1.1 200 OK\r\n", b"\r\n"]),
    ],
    ids=[
        "head-too-long",
        "head-never-ends",
        "conflicting-lengths",
        "negative-length",
        "bad-status",
        "not-http1",
        "space-before-colon",
        "field-without-colon",
        "bad-chunk-size",
        "chunk-without-crlf",
        "chunk-line-too-long",
        "protocol-switch",
        "bad-gzip",
        "too-many-fields",
    ],
)
async def test_a_malformed_answer_fails_the_request_and_closes_the_connection(answer: bytes) -> None:
    server = ScriptedServer(lambda n, head: answer if n == 0 else OK)
    async with server.running():
        client = _client()
        with pytest.raises(InvalidResponse):
            await _get(client, server.url)
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
    assert server.connections == 2


async def test_a_connection_closed_mid_body_fails_the_request() -> None:
    server = ScriptedServer(
        lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", close_after=True
    )
    async with server.running():
        client = _client()
        with pytest.raises(ServerDisconnected):
            await _get(client, server.url)
        await client.close()


async def test_a_timed_out_request_drops_its_connection_so_a_late_answer_reaches_no_one() -> None:
    """The first answer comes after the request's timeout; the next request gets its own answer, on a new
    connection, never the late one."""
    server = ScriptedServer(lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate" if n == 0 else OK)
    server.delay = 0.3
    async with server.running():
        client = _client(pool_size=1)
        with pytest.raises(TimeoutError):
            await _get(client, server.url, within=0.05)
        server.delay = 0
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
    assert server.connections == 2


async def test_the_pool_holds_at_most_its_size_and_serves_every_request() -> None:
    server = ScriptedServer(lambda n, head: OK, delay=0.02)
    async with server.running():
        client = _client(pool_size=2)
        results = await asyncio.gather(*[_get(client, server.url) for _ in range(20)])
        await client.close()
    assert results == [(200, b"ok")] * 20
    assert server.most_open == 2
    assert server.connections == 2


async def test_a_request_waiting_for_the_pool_times_out_and_passes_its_turn_on() -> None:
    """With one connection held by a slow request, a second request waits for it and times out; a third, after the
    first ends, is served."""
    server = ScriptedServer(lambda n, head: OK, delay=0.3)
    async with server.running():
        client = _client(pool_size=1)
        slow = asyncio.create_task(_get(client, server.url))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await _get(client, server.url, within=0.05)
        assert await slow == (200, b"ok")
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """The server closes each connection after answering, without saying so: the next request notices the closed
    idle connection and opens another, rather than failing."""
    server = ScriptedServer(lambda n, head: OK, close_after=True)
    async with server.running():
        client = _client()
        for _ in range(3):
            assert await _get(client, server.url) == (200, b"ok")
            await asyncio.sleep(0.05)  # the server's close arrives
        await client.close()
    assert server.connections == 3


async def test_bytes_no_request_asked_for_stop_the_connection_being_reused() -> None:
    server = ScriptedServer(lambda n, head: OK + b"HTTP/1.1 200 OK\r\n" if n == 0 else OK)
    assert await _in_a_row(server, 2) == [(200, b"ok")] * 2
    assert server.connections == 2


async def test_headers_that_would_break_the_request_are_refused_without_showing_their_value() -> None:
    client = _client()
    with pytest.raises(ValueError, match="X-Api-Key") as refused:
        await client.request("POST", "http://127.0.0.1:9/", b"", {"X-Api-Key": "s3cret\r\nX-Evil: 1"}, 1)
    assert "s3cret" not in str(refused.value)
    for name in ("Host", "Content-Length", "Transfer-Encoding", "Connection"):
        with pytest.raises(ValueError, match="set by the client"):
            await client.request("POST", "http://127.0.0.1:9/", b"", {name: "x"}, 1)
    with pytest.raises(ValueError, match="http and https"):
        await client.request("POST", "ftp://example.com/", b"", None, 1)


async def test_a_string_url_is_sent_in_its_normalized_wire_form() -> None:
    server = ScriptedServer(lambda n, head: OK)
    async with server.running():
        client = _client()
        await client.request("POST", server.url + "/a b/ü?x=1 2", b"", None, 5)
        await client.close()
    assert server.heads[0].startswith(b"POST /a%20b/%C3%BC?x=1+2 HTTP/1.1\r\n")


async def test_a_wire_url_is_sent_as_it_is_on_its_origins_pooled_connection() -> None:
    """A WireUrl's target goes on the request line byte for byte (no re-quoting: `%21` stays), and requests under one
    origin object, or an equal one, share the pool; a target that cannot go on a request line is refused unsent."""
    server = ScriptedServer(lambda n, head: OK)
    async with server.running():
        client = _client()
        origin = URL(server.url)
        await client.request("POST", WireUrl(origin, "/a/%21x?enc=ab"), b"", None, 5)
        await client.request("POST", WireUrl(URL(server.url), "/b"), b"", None, 5)
        await client.request("POST", server.url + "/c", b"", None, 5)
        for target in ("/a b", "/a\r\nX-Evil: 1", "a", "/\u00fc"):
            with pytest.raises(ValueError):
                await client.request("POST", WireUrl(origin, target), b"", None, 5)
        await client.close()
    assert [head.split(b"\r\n")[0] for head in server.heads] == [
        b"POST /a/%21x?enc=ab HTTP/1.1",
        b"POST /b HTTP/1.1",
        b"POST /c HTTP/1.1",
    ]
    assert server.connections == 1
    assert str(WireUrl(origin, "/a/%21x?enc=ab")) == server.url + "/a/%21x?enc=ab"
    assert WireUrl(origin, "/a/%21x?enc=ab").url() == URL(server.url + "/a/%21x?enc=ab", encoded=True)


async def test_tls_verifies_with_the_ca_refuses_without_it_and_skips_only_when_told(tmp_path: Path) -> None:
    pki = make_throwaway_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    server = ScriptedServer(lambda n, head: OK, tls=context)
    async with server.running():
        trusting = ssl.create_default_context(cafile=str(pki.ca_file))
        client = _client(tls=trusting)
        assert await _get(client, server.url) == (200, b"ok")
        await client.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await _get(_client(tls=True), server.url)
        unverified = _client(tls=False)
        assert await _get(unverified, server.url) == (200, b"ok")
        await unverified.close()


async def test_failed_and_cancelled_requests_give_their_connection_back_to_the_pool() -> None:
    """With a pool of one, a malformed answer, a cut connection, a timeout and a cancelled request each leave the
    pool's one slot free: the request after them is served rather than waiting forever."""
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok"]
    server = ScriptedServer(lambda n, head: answers[n] if n < len(answers) else OK, close_after=False)

    def script(n: int, head: bytes) -> bytes | None:
        if n == 1:
            server.close_after = True  # the second answer is cut short by the connection's end
        elif n >= 2:
            server.close_after = False
        return answers[n] if n < len(answers) else OK

    server.script = script
    async with server.running():
        client = _client(pool_size=1)
        with pytest.raises(InvalidResponse):
            await _get(client, server.url)
        with pytest.raises(ServerDisconnected):
            await _get(client, server.url)
        server.delay = 0.2
        with pytest.raises(TimeoutError):
            await _get(client, server.url, within=0.05)
        cancelled = asyncio.create_task(_get(client, server.url))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        server.delay = 0
        assert await asyncio.wait_for(_get(client, server.url), 5) == (200, b"ok")
        await client.close()


async def test_a_plain_dict_of_headers_changed_between_requests_sends_its_new_values() -> None:
    """A caller that keeps one dict and refreshes a token in it sends the new token: only read-only mappings have
    their encoding remembered."""
    server = ScriptedServer(lambda n, head: OK)
    async with server.running():
        client = _client()
        headers = {"Authorization": "Bearer first"}
        await client.request("POST", server.url + "/", b"", headers, 5)
        headers["Authorization"] = "Bearer second"
        await client.request("POST", server.url + "/", b"", headers, 5)
        await client.close()
    assert b"Authorization: Bearer first\r\n" in server.heads[0]
    assert b"Authorization: Bearer second\r\n" in server.heads[1]
