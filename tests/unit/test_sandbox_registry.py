"""The devkit's one registry of vendor stand-ins: each is a registered connector, and `gateway sandbox` serves each."""

from __future__ import annotations

from devkit.commands import _sandbox_parser
from devkit.sandbox.registry import KINDS, READERS, SANDBOXES
from gateway import registry


def test_every_stand_in_is_named_like_a_registered_connector() -> None:
    """A stand-in's name is its connector's: the demo configures `connector: <name>` from it."""
    names = [kind.name for kind in KINDS]
    assert len(set(names)) == len(names)
    for name in names:
        assert registry.get(name).name == name
    assert set(SANDBOXES) | set(READERS) == set(names)


def test_gateway_sandbox_takes_a_port_and_keys_for_every_registered_sandbox() -> None:
    """Options come from the registry: --<name>-port and --<name>-key for each sandbox, plus its own settings."""
    options = {option for action in _sandbox_parser()._actions for option in action.option_strings}
    for name, kind in SANDBOXES.items():
        assert {f"--{name}-port", f"--{name}-key"} <= options
        assert {f"--{name}-{setting}" for setting in kind.settings} <= options
