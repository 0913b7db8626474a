"""The connector contract suite runs for a connector package outside this repository, from its own folder only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import connectors.unibo

PACKAGE_TEST = """
from pathlib import Path
from typing import Any, ClassVar

from connectors.unibo import connector
from devkit.testbed.contract import ConnectorContract
from gateway.connector import Connector


class TestThirdPartyContract(ConnectorContract):
    connector: ClassVar[Connector] = connector
    golden_dir: ClassVar[Path] = Path(__file__).parent / "golden"
    credentials: ClassVar[dict[str, Any]] = {"api_key": "third-party-secret-123"}
    secrets: ClassVar[tuple[str, ...]] = ("third-party-secret-123",)
"""


def test_a_connector_package_elsewhere_runs_the_contract_suite(tmp_path: Path) -> None:
    """Its tests and golden files in a folder of its own, run from there: every contract test passes (the example
    configuration's check is skipped, none given), and no repository file is needed."""
    package = tmp_path / "vendor_connector"
    golden = package / "golden"
    golden.mkdir(parents=True)
    shutil.copy(Path(connectors.unibo.__file__).parent / "tests" / "golden" / "deposit.json", golden)
    (package / "test_contract.py").write_text(PACKAGE_TEST)
    (package / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_contract.py"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d{2,} passed, 1 skipped\b", result.stdout), result.stdout
    assert "no example configuration given" in result.stdout
