"""The producer kit: `gateway validate-event` and `gateway map`, run in-process on JSON lines from stdin."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from connectors.userwise.signing import appuser_url, request_hash
from gateway.cli import main

DEPOSIT = {
    "event_id": "dep-1",
    "type": "deposit",
    "occurred_at": "2026-12-01T10:00:00Z",
    "player_id": "p 1",
    "transaction_id": "tx-1",
    "amount": "25.50",
    "currency": "EUR",
}
LOGIN = {"event_id": "login-1", "type": "login", "occurred_at": "2026-12-01T10:00:00Z", "player_id": "p2"}
CUSTOM = {"event_id": "c-1", "type": "custom", "occurred_at": "2026-12-01T10:00:00Z", "player_id": "p2", "name": "m"}
USERWISE_KEY = "userwise-app-key-0123456789"
USERWISE_SECRET = "userwise-company-secret-0123456789"


def lines(*events: dict[str, Any] | str) -> bytes:
    """JSON lines (a str is written as is)."""
    return b"".join((e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n" for e in events)


def run(argv: list[str], stdin: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`gateway ARGV` in-process with `stdin`; (exit status, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_validate_event_reports_each_invalid_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each invalid line is reported with its number and reason; valid and blank lines are not; exit 1."""
    bad_event = {**DEPOSIT, "occurred_at": "2026-12-01T10:00:00", "amount": -1}
    stdin = lines(DEPOSIT, "{not json", "", bad_event, LOGIN, {"type": "teleport", "event_id": "t"})
    status, out, err = run(["validate-event"], stdin, monkeypatch, capsys)
    assert status == 1
    reported = out.splitlines()
    assert [line.split(":")[0] for line in reported] == ["line 2", "line 4", "line 6"]
    assert reported[0].startswith("line 2: invalid_json: ")
    assert reported[1].startswith("line 4: invalid_event: deposit event: ")
    assert "occurred_at: must have a zone offset" in reported[1]
    assert "amount" in reported[1]
    assert reported[2].startswith("line 6: invalid_event: ")
    assert "5 event(s): 2 valid, 3 invalid" in err


def test_validate_event_exits_zero_when_every_line_is_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only valid events: nothing reported, exit 0."""
    status, out, err = run(["validate-event"], lines(DEPOSIT, LOGIN, CUSTOM), monkeypatch, capsys)
    assert (status, out) == (0, "")
    assert "3 event(s): 3 valid, 0 invalid" in err


def config_file(tmp_path: Path) -> Path:
    """Unibo, UserWise and InTarget destinations (pointing nowhere: nothing may be sent)."""
    tree = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["events"], "dlq_topic": "events.dlq"},
        "http": {"listen": "0.0.0.0:9108"},
        "destinations": [
            {
                "name": "unibo",
                "connector": "unibo",
                "base_url": "http://127.0.0.1:1",
                "credentials": {"default": {"api_key": "unibo-key-0123456789"}},
            },
            {
                "name": "userwise",
                "connector": "userwise",
                "base_url": "http://127.0.0.1:1",
                "credentials": {"default": {"api_key": USERWISE_KEY, "secret_key": USERWISE_SECRET}},
            },
            {
                "name": "intarget",
                "connector": "intarget",
                "store": f"sqlite:///{tmp_path / 'never-created.db'}",
                "feed": {"listen": "0.0.0.0:9110", "token": "feed-token-0123456789"},
            },
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def requests_of(out: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(request line, headers, body) of every request block `gateway map` printed."""
    found = []
    for block in out.split("\n\n"):
        first, *rest = block.splitlines() or [""]
        if first.startswith(("POST ", "DELETE ", "GET ")):
            headers = dict(line.split(": ", 1) for line in rest)
            found.append((first, headers, b""))
        elif found and found[-1][2] == b"" and block.strip() and not block.startswith("#"):
            found[-1] = (found[-1][0], found[-1][1], block.strip().encode())
    return found


def test_map_prints_userwise_requests_signed_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deposit becomes UserWise's revenue event and event: each URL carries the enc hash of its exact body."""
    status, out, _ = run(
        ["map", "--config", str(config_file(tmp_path)), "--destination", "userwise"],
        lines(DEPOSIT),
        monkeypatch,
        capsys,
    )
    assert status == 0
    assert "# line 1: deposit dep-1: 2 request(s)" in out
    printed = requests_of(out)
    assert [request.split("?")[0] for request, _, _ in printed] == [
        "POST " + appuser_url("http://127.0.0.1:1", "p 1", "revenue_events"),
        "POST " + appuser_url("http://127.0.0.1:1", "p 1", "events"),
    ]
    for request, headers, body in printed:
        url = request.removeprefix("POST ").split("?enc=")[0]
        assert request.endswith("?enc=" + request_hash(url, body, USERWISE_SECRET))
        assert headers["X-Api-Key"] == "**********"
    revenue = orjson.loads(printed[0][2])["revenue_events"][0]
    assert (revenue["transaction_id"], revenue["revenue"]) == ("tx-1", 25.5)
    assert USERWISE_KEY not in out and USERWISE_SECRET not in out


def test_map_shows_filtered_dead_lettered_and_unibo_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unibo gets {"items": [...]}; a type it does not take is filtered; unknown brand and bad JSON dead-letter."""
    stdin = lines(DEPOSIT, CUSTOM, {**LOGIN, "brand": "other-casino"}, "[1, 2]")
    path = config_file(tmp_path)
    status, out, err = run(["map", "--config", str(path), "--destination", "unibo"], stdin, monkeypatch, capsys)
    assert status == 1
    assert "2 event(s) would be dead-lettered" in err
    ((request, headers, body),) = requests_of(out)
    assert request == "POST http://127.0.0.1:1/api/v1/events"
    assert headers["x-api-key"] == "**********"
    (item,) = orjson.loads(body)["items"]
    assert item["event"] == "deposit"
    assert item["data"]["unique_id"] == "dep-1"
    assert "# line 2: custom c-1: not taken by unibo (filtered" in out
    assert "# line 3: login login-1: dead letter (unknown_brand): brand 'other-casino'" in out
    assert "# line 4: dead letter (invalid_json)" in out


def test_map_shows_what_a_store_destination_would_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """InTarget's records are printed per feed; the store itself is neither opened nor created."""
    path = config_file(tmp_path)
    status, out, _ = run(
        ["map", "--config", str(path), "--destination", "intarget"], lines(DEPOSIT), monkeypatch, capsys
    )
    assert status == 0
    assert "# line 1: deposit dep-1: 1 record(s) stored" in out
    assert '"dir":"IN"' in out and out.count("transactions (key p 1") == 1
    assert not (tmp_path / "never-created.db").exists()


def test_map_refuses_an_unknown_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A destination name that is not configured is a clear error naming the configured ones."""
    path = config_file(tmp_path)
    status, _, err = run(["map", "--config", str(path), "--destination", "unib"], lines(DEPOSIT), monkeypatch, capsys)
    assert status == 1
    assert "no destination named 'unib'" in err
