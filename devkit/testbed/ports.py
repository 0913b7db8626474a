"""A TCP port free right now, for the test bed, the demo, the benchmarks and the tests (one copy for all)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_FLOOR = 10_000  # below: well-known services (PostgreSQL, Redis, Kafka's 9092, the gateway's own 9108...)
_TRIES = 200
_chance = random.SystemRandom()  # not the global generator: tests seed that, and every worker would pick alike


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out by itself (to bind(0) and to every outgoing connection)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host`, taken below the kernel's ephemeral range.

    A port the kernel chose (bind to 0) is one it may give again, before the caller binds it, to any of the
    machine's outgoing connections or bind(0) listeners: with parallel test workers, that happened. Below the
    range only another explicit choice can take it. Whoever binds it later may still lose a race; retry then."""
    ceiling = _ephemeral_floor()
    for _ in range(_TRIES if ceiling > _FLOOR + 1000 else 0):
        port = _chance.randrange(_FLOOR, ceiling)
        try:
            with socket.create_server((host, port)):
                return port
        except OSError:
            continue
    with socket.create_server((host, 0)) as sock:
        chosen: int = sock.getsockname()[1]
        return chosen
