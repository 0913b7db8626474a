"""constraints.txt pins every dependency pyproject.toml names, within its range, and the Makefile installs with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match is not None, f"not an exact pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Version(match.group(2))
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        named.extend(extra)
    return [Requirement(text) for text in named]


def test_every_dependency_is_pinned_within_its_range() -> None:
    """A dependency added to pyproject.toml without `make constraints` would install unpinned: refused here."""
    pins = _pins()
    requirements = _requirements()
    assert len(requirements) > 20  # the runtime, dev, demo and bench lists were all read
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt (run `make constraints`)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} ∉ {requirement}"


def test_the_makefile_installs_with_the_constraints() -> None:
    """`make test` and `make demo` install the pinned set, and a new pin reinstalls (the images: tests/deploy)."""
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e '.[dev,demo]'" in line]
    assert installs and all("--constraint constraints.txt" in line for line in installs), installs
    assert re.search(r"^\$\(STAMP\):.*\bconstraints\.txt\b", makefile, re.MULTILINE)
