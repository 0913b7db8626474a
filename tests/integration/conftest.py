"""Fixtures for integration tests: one embedded broker per session, a fresh topic and sandbox per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from devkit.sandbox.server import SandboxServer
from devkit.sandbox.unibo.sandbox import UniboSandbox
from devkit.testbed.broker import EmbeddedBroker

UNIBO_KEY = "test-unibo-key"
_counter = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A real Kafka-compatible broker (Tansu) for the whole session."""
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
async def topic(broker: EmbeddedBroker, request: pytest.FixtureRequest) -> str:
    """A fresh 3-partition source topic and its dead-letter topic for this test."""
    name = f"events-{next(_counter)}-{request.node.name[:40].replace('[', '-').replace(']', '')}"
    name = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in name)
    await broker.create_topic(name, partitions=3)
    await broker.create_topic(f"{name}.dlq", partitions=1)
    return name


@dataclass
class RunningSandbox:
    """A Unibo sandbox served on a free port."""

    sandbox: UniboSandbox
    url: str


@pytest.fixture
async def unibo() -> AsyncIterator[RunningSandbox]:
    """A Unibo sandbox accepting UNIBO_KEY for tenant `default`."""
    sandbox = UniboSandbox({UNIBO_KEY: "default"}, fault_seed=1)
    async with SandboxServer(sandbox.app()) as server:
        yield RunningSandbox(sandbox, server.url)
