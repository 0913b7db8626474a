"""Readiness probes of a Kafka broker over a blocking socket: ApiVersions v0, then Metadata v0 naming us."""

from __future__ import annotations

import socket
import struct

_API_VERSIONS = 18
_METADATA = 3
_CLIENT_ID = b"event-gateway-testbed"


class ProbeError(Exception):
    """The broker answered, but not like a ready Kafka broker."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes or raise ProbeError when the broker closes the connection first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ProbeError("connection closed by the broker")
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
        raise ProbeError(f"correlation id {answered} != {correlation_id}")
    return response[4:]


def probe(host: str, port: int, advertised: tuple[str, int], *, metadata: bool, timeout: float) -> None:
    """One readiness probe: ApiVersions must list Metadata; then (unless auth is required) Metadata must list us."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        body = _round_trip(sock, _API_VERSIONS, 1, b"")
        error_code, count = struct.unpack_from(">hi", body)
        if error_code != 0:
            raise ProbeError(f"ApiVersions error code {error_code}")
        api_keys = {struct.unpack_from(">h", body, 6 + 6 * i)[0] for i in range(count)}
        if _METADATA not in api_keys:
            raise ProbeError("ApiVersions does not list Metadata")
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
            raise ProbeError(f"Metadata lists brokers {sorted(brokers)}, not the advertised {advertised}")


# ---------------------------------------------------------------------------------------------------------------------
# TLS termination in front of Tansu
