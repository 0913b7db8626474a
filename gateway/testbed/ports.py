"""A TCP port free right now, for the test bed, the demo, the benchmarks and the tests (one copy for all)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a TCP port free right now on `host` (whoever binds it a moment later may race; retry then)."""
    with socket.create_server((host, 0)) as sock:
        port: int = sock.getsockname()[1]
        return port
