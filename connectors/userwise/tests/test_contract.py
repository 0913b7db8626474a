"""The UserWise connector against the shared connector contract suite."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from connectors.userwise import connector
from devkit.testbed.contract import ConnectorContract
from gateway.connector import Connector
from tests.example_config import EXAMPLE_CONFIG, EXAMPLE_ENV


class TestUserWiseContract(ConnectorContract):
    """Golden fixtures, purity, outcome table and secret handling for UserWise."""

    connector: ClassVar[Connector] = connector
    golden_dir: ClassVar[Path] = Path(__file__).parent / "golden"
    example_config: ClassVar[Path | None] = EXAMPLE_CONFIG
    example_env: ClassVar[Mapping[str, str]] = EXAMPLE_ENV
    credentials: ClassVar[dict[str, Any]] = {
        "api_key": "userwise-contract-key-123",
        "secret_key": "userwise-contract-secret-456",
    }
    secrets: ClassVar[tuple[str, ...]] = ("userwise-contract-key-123", "userwise-contract-secret-456")
