"""GATEWAY_EVENT_LOOP picks the loop `gateway run` and `replay` run on: uvloop unless told otherwise."""

from __future__ import annotations

import asyncio
import importlib.util
from importlib import metadata
from pathlib import Path

import pytest
import uvloop

from gateway import event_loop
from tests.command_line import gateway


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_EVENT_LOOP", raising=False)
    assert event_loop.chosen() == "uvloop"
    assert event_loop.run(_loop_module()).startswith("uvloop")


@pytest.mark.parametrize(("value", "expected"), [("asyncio", "asyncio"), (" UVLOOP ", "uvloop"), ("", "uvloop")])
def test_the_environment_names_the_loop(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("GATEWAY_EVENT_LOOP", value)
    assert event_loop.chosen() == expected
    assert event_loop.run(_loop_module()).startswith(expected)


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="use one of uvloop, asyncio"):
        event_loop.chosen()


def test_uvloop_where_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv("GATEWAY_EVENT_LOOP", raising=False)
    assert event_loop.chosen() == "asyncio"
    monkeypatch.setenv("GATEWAY_EVENT_LOOP", "uvloop")
    with pytest.raises(ValueError, match="not installed"):
        event_loop.chosen()


def test_run_and_replay_exit_1_on_an_unknown_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Said before anything starts, like an invalid configuration."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', topics: [events], dlq_topic: events.dlq}\n"
        "destinations:\n"
        "  - {name: unibo, connector: unibo, base_url: 'http://127.0.0.1:1',"
        " credentials: {default: {api_key: unibo-key-0123456789}}}\n"
    )
    monkeypatch.setenv("GATEWAY_EVENT_LOOP", "trio")
    assert gateway("run", "--config", str(config)) == 1
    assert "invalid environment: GATEWAY_EVENT_LOOP='trio'" in capsys.readouterr().err
    assert gateway("replay", "--config", str(config), "--destination", "unibo") == 1
    assert "invalid environment: GATEWAY_EVENT_LOOP='trio'" in capsys.readouterr().err


def test_uvloop_is_a_real_dependency() -> None:
    """Installed with the gateway (pyproject), not only in this virtualenv."""
    assert callable(uvloop.new_event_loop)
    assert any(r.startswith("uvloop") for r in metadata.requires("event-gateway") or [])
