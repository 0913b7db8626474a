"""DLQ replay's pure parts: header reading and rewriting, the selection, the summary and the progress bar."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import _parser, main
from gateway.errors import DeadLetterReason
from gateway.logs import scrubber
from gateway.replay_records import (
    ATTEMPT_HEADER,
    ProgressBar,
    ReplaySelection,
    ReplaySummary,
    attempt_of,
    failed_again_headers,
    failed_at,
    gateway_headers,
)


@dataclass
class Record:
    """The parts of an aiokafka ConsumerRecord that replay reads."""

    headers: list[tuple[str, bytes]] = field(default_factory=list)
    value: bytes = b"{}"
    key: bytes | None = b"p1"
    partition: int = 0
    offset: int = 0


def dead_letter(**headers: str) -> Record:
    """A dead letter with the producer's own header plus the given gateway-* headers (underscores → dashes)."""
    gateway = [(f"gateway-{name.replace('_', '-')}", value.encode()) for name, value in headers.items()]
    return Record([("traceparent", b"00-abc"), *gateway])


def test_failed_again_keeps_the_source_and_counts_the_attempt() -> None:
    """A re-failed record keeps producer headers and the original source, with a new cause and attempt + 1."""
    record = dead_letter(destination="unibo", reason="rejected", source="events/2/41", failed_at="2026-01-01T00:00:00Z")
    headers = failed_again_headers(record, "invalid_json", "still not JSON", None)
    assert headers[0] == ("traceparent", b"00-abc")
    again = gateway_headers(Record(headers))
    assert again["gateway-destination"] == "unibo"
    assert again["gateway-source"] == "events/2/41"
    assert again["gateway-reason"] == "invalid_json"
    assert again["gateway-status"] == ""
    assert again[ATTEMPT_HEADER] == "2"
    when = failed_at(again)
    assert when is not None and when > datetime(2026, 1, 2, tzinfo=UTC)
    third = gateway_headers(Record(failed_again_headers(Record(headers), "rejected", "422", 422)))
    assert (third[ATTEMPT_HEADER], third["gateway-status"]) == ("3", "422")
    assert sum(1 for key, _ in failed_again_headers(Record(headers), "rejected", "x", 1) if key == ATTEMPT_HEADER) == 1


def test_failed_again_error_is_scrubbed_and_bounded() -> None:
    """The new error text passes through the secret scrubber and the 1 KiB bound."""
    scrubber.register(["replay-secret-key-123"])
    headers = gateway_headers(
        Record(failed_again_headers(dead_letter(), "rejected", "echo replay-secret-key-123 " + "x" * 4000, 422))
    )
    assert "replay-secret-key-123" not in headers["gateway-error"]
    assert len(headers["gateway-error"].encode()) <= 1024


@pytest.mark.parametrize(
    ("value", "attempt"), [(None, 1), ("2", 2), ("7", 7), ("0", 1), ("junk", 1)], ids=["absent", "2", "7", "0", "junk"]
)
def test_attempt_defaults_to_one(value: str | None, attempt: int) -> None:
    """A first dead letter carries no attempt header and counts as attempt 1; junk does too."""
    headers = {} if value is None else {ATTEMPT_HEADER: value}
    assert attempt_of(headers) == attempt


@pytest.mark.parametrize(
    ("selection", "wanted"),
    [
        (ReplaySelection("unibo"), True),
        (ReplaySelection("unibo", frozenset({"rejected"})), True),
        (ReplaySelection("unibo", frozenset({"invalid_event"})), False),
        (ReplaySelection("unibo", since=datetime(2026, 3, 1, tzinfo=UTC)), True),
        (ReplaySelection("unibo", since=datetime(2026, 3, 2, tzinfo=UTC)), False),
    ],
    ids=["all", "same-reason", "other-reason", "since-before", "since-after"],
)
def test_selection_filters_by_reason_and_time(selection: ReplaySelection, wanted: bool) -> None:
    """--reason keeps the listed reasons; --since keeps records that failed at or after the time."""
    headers = {"gateway-reason": "rejected", "gateway-failed-at": "2026-03-01T12:00:00.000000Z"}
    assert selection.wants(headers) is wanted


def test_since_excludes_records_without_a_readable_time() -> None:
    """A record whose failed-at cannot be read does not pass a --since filter."""
    since = ReplaySelection("unibo", since=datetime(2026, 1, 1, tzinfo=UTC))
    assert not since.wants({"gateway-failed-at": "yesterday"})
    assert failed_at({"gateway-failed-at": "2026-03-01T12:00:00"}) == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_summary_reports_each_outcome() -> None:
    """The final report names delivered, failed again and skipped, and what a dry run would do."""
    summary = ReplaySummary("unibo", "events.dlq", "eg.unibo.replay", delivered=7, failed=2)
    summary.skipped_by_filter, summary.skipped_not_taken, summary.other_destinations = 3, 1, 5
    report = summary.report()
    assert "delivered      7\n" in report
    assert "failed again   2" in report and ATTEMPT_HEADER in report
    assert "skipped        4  (--reason/--since 3, types unibo does not take 1)" in report
    assert "left alone: 5" in report
    dry = ReplaySummary("unibo", "events.dlq", "g", dry_run=True, selected=4)
    dry.reasons.update({"rejected": 3, "unknown_brand": 1})
    assert "would replay   4  (rejected 3, unknown_brand 1)" in dry.report()


def test_progress_bar_fills_with_records_read() -> None:
    """Half read draws half a bar with the counts; a final update always prints."""
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10, every=3600)
    summary = ReplaySummary("unibo", "t", "g", total=40, read=20, delivered=15, failed=1)
    assert bar.line(summary, 4).startswith("[#####.....] 20/40 read  delivered 15  failed again 1  skipped 0")
    bar.update(summary, 4)
    bar.update(summary, 4)  # throttled: not a terminal
    summary.read = 40
    bar.update(summary, 0, final=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("[##########] 40/40")


def test_cli_replay_options() -> None:
    """`gateway replay` parses its filters; bad times and limits are refused; reasons are the DLQ's."""
    for reason in DeadLetterReason:
        chosen = _parser().parse_args(["replay", "--config", "c.yaml", "--destination", "unibo", "--reason", reason])
        assert chosen.reason == [reason.value]
    filters = ["--reason", "rejected", "--reason", "unknown_brand", "--since", "2026-03-01T00:00:00Z", "--limit", "5"]
    args = _parser().parse_args(["replay", "--config", "c.yaml", "--destination", "unibo", *filters, "--dry-run"])
    assert (args.destination, args.reason, args.limit, args.dry_run) == (
        "unibo",
        ["rejected", "unknown_brand"],
        5,
        True,
    )
    assert args.since == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in (["--since", "yesterday"], ["--limit", "0"], ["--reason", "bored"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["replay", "--config", "c.yaml", "--destination", "unibo", *bad])


def test_cli_replay_refuses_an_unknown_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A destination the configuration does not have is a clear error (exit 1) before anything connects."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', topics: [t], dlq_topic: t.dlq}\n"
        "destinations: [{name: unibo, connector: unibo, credentials: {default: {api_key: k}}}]\n"
    )
    assert main(["replay", "--config", str(config), "--destination", "enable3"]) == 1
    assert "no destination named 'enable3'" in capsys.readouterr().err
