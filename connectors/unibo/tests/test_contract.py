"""The Unibo connector against the shared connector contract suite."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from connectors.unibo import connector
from devkit.testbed.contract import ConnectorContract
from gateway.connector import Connector
from tests.example_config import EXAMPLE_CONFIG, EXAMPLE_ENV


class TestUniboContract(ConnectorContract):
    """Golden fixtures, purity, outcome table and secret handling for Unibo."""

    connector: ClassVar[Connector] = connector
    golden_dir: ClassVar[Path] = Path(__file__).parent / "golden"
    example_config: ClassVar[Path | None] = EXAMPLE_CONFIG
    example_env: ClassVar[Mapping[str, str]] = EXAMPLE_ENV
    credentials: ClassVar[dict[str, Any]] = {"api_key": "unibo-contract-secret-123"}
    secrets: ClassVar[tuple[str, ...]] = ("unibo-contract-secret-123",)
