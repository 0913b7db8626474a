"""The command-line contract: schema, version, check-config through the environment (in this process); the sandbox
and `run` as `python -m gateway` processes, stopped by a signal."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from devkit.testbed.ports import free_port
from gateway.cli import _parser
from tests.command_line import gateway
from tests.example_config import EXAMPLE_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_schema_prints_the_event_contract(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway schema` prints a JSON Schema that covers every event type."""
    assert gateway("schema") == 0
    text = capsys.readouterr().out
    schema = orjson.loads(text)
    for kind in (
        "deposit",
        "withdrawal",
        "gameround",
        "login",
        "player",
        "game",
        "custom",
        "revenue",
        "segment",
        "wallet",
        "bonus",
        "sports_bet",
    ):
        assert f'"{kind}"' in text, kind
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway --version` names the package."""
    assert gateway("--version") == 0
    assert capsys.readouterr().out.startswith("event-gateway ")


def test_config_path_from_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEWAY_CONFIG stands in for --config."""
    example = str(ROOT / "config" / "gateway.example.yaml")
    for name, value in {"GATEWAY_CONFIG": example, **EXAMPLE_ENV}.items():
        monkeypatch.setenv(name, value)
    status = gateway("check-config")
    err = capsys.readouterr().err
    assert status == 0, err
    assert "configuration OK" in err


def test_missing_config_is_a_clear_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config or GATEWAY_CONFIG, run exits 2 with a usage message."""
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert gateway("run") == 2
    assert "--config" in capsys.readouterr().err


@contextlib.asynccontextmanager
async def _sandbox_process(*options: str, until: str) -> AsyncIterator[str]:
    """`gateway sandbox` with these options, once it printed a line containing `until` (yielded); stopped at exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sandbox", *options, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        line = ""
        while until not in line:
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            assert line, f"the sandbox exited before printing {until!r}"
        yield line
    finally:
        process.terminate()
        await process.wait()


async def test_sandbox_command_serves_the_unibo_sandbox() -> None:
    """`gateway sandbox` serves the Unibo sandbox: a batch with the right key is stored and reported."""
    port = free_port()
    # Enable3 and UserWise off: this test is about Unibo, and their default ports may be taken.
    options = ("--unibo-port", str(port), "--unibo-key", "brand-x=k-123", "--enable3-port", "0", "--userwise-port", "0")
    async with _sandbox_process(*options, until="unibo sandbox") as line:
        assert f"127.0.0.1:{port}" in line
        item = {"event": "login", "data": {"unique_id": "u1", "timestamp": "2026-01-01T00:00:00Z", "player_id": "p"}}
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{port}/api/v1/events", json={"items": [item]}, headers={"x-api-key": "k-123"}
            ) as response:
                assert response.status == 204
            async with session.get(f"http://127.0.0.1:{port}/_sandbox/unibo/received?ids=1") as response:
                report = await response.json()
    assert "u1" in orjson.dumps(report).decode()


async def test_sandbox_command_also_serves_the_enable3_sandbox() -> None:
    """`gateway sandbox --enable3-port` serves Enable3 beside Unibo: an event with its key is stored and reported."""
    unibo_port, enable3_port = free_port(), free_port()
    options = ("--unibo-port", str(unibo_port), "--enable3-port", str(enable3_port), "--enable3-key", "brand-y=e3-key")
    async with _sandbox_process(
        *options, "--userwise-port", "0", until=f"enable3 sandbox at http://127.0.0.1:{enable3_port}"
    ):
        event = {"id": "e1", "userId": "u", "eventId": "login", "value": 1, "createdAt": "2026-01-01 00:00:00"}
        base = f"http://127.0.0.1:{enable3_port}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/v1/event", json=event, headers={"X-API-KEY": "e3-key"}) as response:
                assert response.status == 201
            async with session.get(f"{base}/_sandbox/enable3/received?ids=1") as response:
                report = await response.json()
    assert report["tenants"]["brand-y"]["ids"] == ["e1"]


async def test_sandbox_command_serves_the_userwise_sandbox() -> None:
    """`gateway sandbox` also serves UserWise: a request signed with the given key and secret is recorded."""
    unibo_port, userwise_port = free_port(), free_port()
    options = ("--unibo-port", str(unibo_port), "--enable3-port", "0", "--userwise-port", str(userwise_port))
    userwise = ("--userwise-key", "brand-y=uw-key", "--userwise-secret", "uw-secret")
    async with _sandbox_process(*options, *userwise, until="userwise sandbox") as line:
        assert f"127.0.0.1:{userwise_port}" in line
        assert "brand-y" in line
        url = f"http://127.0.0.1:{userwise_port}/api/v1/appuser/p%201/events"
        body = b'{"events":[{"event_id":"login","attributes":[{"name":"event_uid","value":"e1"}]}]}'
        enc = hashlib.sha3_256(url.encode() + body + b"uw-secret").hexdigest()
        headers = {"X-Api-Key": base64.b64encode(b"uw-key").decode(), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}?enc={enc}", data=body, headers=headers) as response:
                assert response.status == 204
            report_url = f"http://127.0.0.1:{userwise_port}/_sandbox/userwise/received?ids=1&player=p%201"
            async with session.get(report_url) as response:
                report = await response.json()
        assert report["apps"]["brand-y"]["event_uids"] == ["e1"]
        assert report["apps"]["brand-y"]["timeline"] == [["events", "e1"]]


def test_run_logs_the_configuration_warnings(tmp_path: Path) -> None:
    """`gateway run` logs what check-config warns about (a loopback http.listen) before it starts."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', topics: [events], dlq_topic: events.dlq}\n"
        "http: {listen: '127.0.0.1:0'}\n"
        "logging: {format: json}\n"
        "destinations:\n"
        "  - {name: unibo, connector: unibo, base_url: 'http://127.0.0.1:1',"
        " credentials: {default: {api_key: unibo-key-0123456789}}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "configuration warning" in line or "kafka unreachable" in line:
                break  # the warning comes before the gateway starts, and so before its first Kafka retry
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)  # drains and closes the pipe
    warning = orjson.loads(next(line for line in lines if "configuration warning" in line))
    assert warning["detail"].startswith("http.listen: 127.0.0.1:0 is a loopback address")
    assert warning["level"] == "warning"


@contextlib.contextmanager
def _signals_kept() -> Iterator[None]:
    """`gateway run` installs its SIGTERM/SIGINT handlers first: put the test process's own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_workers_from_the_option_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--workers N` and GATEWAY_WORKERS take a positive count (default 1: one process); anything else is a usage
    error before any configuration is read, and a worker cannot be started by hand."""
    assert _parser().parse_args(["run", "--config", "c.yaml"]).workers == 1
    assert _parser().parse_args(["run", "--config", "c.yaml", "--workers", "3"]).workers == 3
    for bad in ("0", "-2", "many"):
        assert gateway("run", "--config", "missing.yaml", "--workers", bad) == 2
        assert "--workers" in capsys.readouterr().err
        with monkeypatch.context() as env:
            env.setenv("GATEWAY_WORKERS", bad)
            assert gateway("run", "--config", "missing.yaml") == 2
        capsys.readouterr()
    monkeypatch.setenv("GATEWAY_WORKERS", "4")
    assert _parser().parse_args(["run", "--config", "c.yaml"]).workers == 4
    with _signals_kept():
        assert gateway("run", "--config", "missing.yaml", "--worker", "1", "--status-fd", "1") == 2
    assert "not by hand" in capsys.readouterr().err
