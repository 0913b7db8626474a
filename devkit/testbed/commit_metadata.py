"""A relay in front of Tansu that keeps offset-commit metadata, which Tansu drops (test bed only).

Kafka stores the metadata string of each OffsetCommit and returns it in OffsetFetch (up to offset.metadata.max.bytes,
4096 by default); the gateway uses it to name the offsets settled above the watermark. The bundled Tansu (v0.6.0)
accepts the string but returns "" (its storage API returns committed offsets only). With `keep_commit_metadata=True`
the EmbeddedBroker advertises this relay's port: everything passes through unchanged to the real broker, except that
the relay remembers each successful commit's metadata and puts it back into OffsetFetch answers whose offset is the
one committed with it, as Kafka does. Offsets, groups, fetches and rebalances stay Tansu's own.

Only the non-flexible versions aiokafka speaks (OffsetCommit v2-v3, OffsetFetch v0-v3) are read; others pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

from aiokafka.protocol.commit import (
    OffsetCommitRequest_v2,
    OffsetCommitRequest_v3,
    OffsetCommitResponse_v2,
    OffsetCommitResponse_v3,
    OffsetFetchRequest_v0,
    OffsetFetchRequest_v1,
    OffsetFetchRequest_v2,
    OffsetFetchRequest_v3,
    OffsetFetchResponse_v0,
    OffsetFetchResponse_v1,
    OffsetFetchResponse_v2,
    OffsetFetchResponse_v3,
)

_COMMIT, _FETCH = 8, 9
_COMMIT_REQUESTS: dict[int, Any] = {2: OffsetCommitRequest_v2, 3: OffsetCommitRequest_v3}
_COMMIT_RESPONSES: dict[int, Any] = {2: OffsetCommitResponse_v2, 3: OffsetCommitResponse_v3}
_FETCH_REQUESTS: dict[int, Any] = {
    0: OffsetFetchRequest_v0,
    1: OffsetFetchRequest_v1,
    2: OffsetFetchRequest_v2,
    3: OffsetFetchRequest_v3,
}
_FETCH_RESPONSES: dict[int, Any] = {
    0: OffsetFetchResponse_v0,
    1: OffsetFetchResponse_v1,
    2: OffsetFetchResponse_v2,
    3: OffsetFetchResponse_v3,
}

Key = tuple[str, str, int]  # group, topic, partition


class CommitMetadataKeeper:
    """Relays Kafka connections from a public port to Tansu, keeping commit metadata; runs in its own thread."""

    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.create_server((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.upstream: tuple[str, int] = (host, 0)
        self.kept: dict[Key, tuple[int, str]] = {}  # the last successful commit's offset and metadata
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self, upstream: tuple[str, int], timeout: float) -> None:
        """Start relaying to `upstream` (Tansu's own listener)."""
        self.upstream = upstream
        self._thread = threading.Thread(target=self._run, name=f"tansu-metadata-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the commit-metadata relay on port {self.port} did not start")

    def stop(self) -> None:
        """Close the listener and every relayed connection; idempotent."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if thread is not None and loop is not None and stopping is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
            thread.join()
        self._sock.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._relay, sock=self._sock)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await server.wait_closed()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(broker_writer)
        asked: dict[int, tuple[int, int, Any]] = {}  # correlation id -> api key, version, decoded request
        directions = [
            asyncio.create_task(self._requests(client_reader, broker_writer, asked)),
            asyncio.create_task(self._responses(broker_reader, client_writer, asked)),
        ]
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in directions:
                task.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
            for writer in (client_writer, broker_writer):
                writer.transport.abort()
                self._writers.discard(writer)

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: dict[int, tuple[int, int, Any]]
    ) -> None:
        while True:
            frame = await _read_frame(reader)
            api_key, version, correlation = struct.unpack_from(">hhi", frame, 4)
            decoder = (_COMMIT_REQUESTS if api_key == _COMMIT else _FETCH_REQUESTS if api_key == _FETCH else {}).get(
                version
            )
            if decoder is not None:
                (client_len,) = struct.unpack_from(">h", frame, 12)
                body = frame[14 + max(client_len, 0) :]
                asked[correlation] = (api_key, version, decoder.decode(body))
            writer.write(frame)
            await writer.drain()

    async def _responses(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: dict[int, tuple[int, int, Any]]
    ) -> None:
        while True:
            frame = await _read_frame(reader)
            (correlation,) = struct.unpack_from(">i", frame, 4)
            request = asked.pop(correlation, None)
            if request is not None:
                api_key, version, decoded = request
                body = frame[8:]
                if api_key == _COMMIT:
                    self._keep(decoded, _COMMIT_RESPONSES[version].decode(body))
                else:
                    answer = self._restore(decoded, _FETCH_RESPONSES[version], body)
                    frame = struct.pack(">ii", 4 + len(answer), correlation) + answer
            writer.write(frame)
            await writer.drain()

    def _keep(self, request: Any, response: Any) -> None:
        accepted = {
            (topic, partition) for topic, partitions in response.topics for partition, error in partitions if not error
        }
        for topic, partitions in request.topics:
            for partition, offset, metadata in partitions:
                if (topic, partition) in accepted:
                    self.kept[(request.consumer_group, topic, partition)] = (offset, metadata or "")

    def _restore(self, request: Any, response_type: Any, body: bytes) -> bytes:
        response = response_type.decode(body)
        topics = []
        for topic, partitions in response.topics:
            rows = []
            for partition, offset, metadata, error in partitions:
                kept = self.kept.get((request.consumer_group, topic, partition))
                restored = kept[1] if kept is not None and kept[0] == offset and not metadata else metadata
                rows.append((partition, offset, restored, error))
            topics.append((topic, rows))
        values = [topics if name == "topics" else getattr(response, name) for name in response_type.SCHEMA.names]
        encoded: bytes = response_type(*values).encode()
        return encoded


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    (size,) = struct.unpack(">i", header)
    return header + await reader.readexactly(size)
