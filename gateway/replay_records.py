"""What DLQ replay reads and tracks: dead-letter headers, the selection, partition progress, the tally, the bar."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.dlq import RECORD_HEADER, VALUE_DROPPED_HEADER, truncate_utf8
from gateway.logs import scrubber
from gateway.offset_metadata import SettledAbove
from gateway.offsets import PartitionOffsets

ATTEMPT_HEADER = "gateway-attempt"


def gateway_headers(message: Any) -> dict[str, str]:
    """A dead letter's `gateway-*` headers as text (the last one wins if a header repeats)."""
    found: dict[str, str] = {}
    for key, value in message.headers or ():
        if key.startswith("gateway-"):
            found[key] = value.decode("utf-8", "replace") if value is not None else ""
    return found


def attempt_of(headers: Mapping[str, str]) -> int:
    """How many times this record was dead-lettered (1 before any replay)."""
    text = headers.get(ATTEMPT_HEADER, "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def failed_at(headers: Mapping[str, str]) -> datetime | None:
    """The `gateway-failed-at` time, or None when absent or unreadable."""
    text = headers.get("gateway-failed-at", "")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def failed_again_headers(
    message: Any, reason: str, error: str, status: int | None, record_id: str | None = None
) -> list[tuple[str, bytes]]:
    """Headers of a record that failed its replay: the producer's own, its source, the new cause, attempt + 1, and
    the vendor record that failed (`record_id`, else the one the dead letter already named, if any)."""
    previous = gateway_headers(message)
    record = record_id if record_id is not None else previous.get(RECORD_HEADER)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    own = [(key, value) for key, value in (message.headers or ()) if not key.startswith("gateway-")]
    return [
        *own,
        ("gateway-destination", previous.get("gateway-destination", "").encode()),
        ("gateway-reason", reason.encode()),
        ("gateway-error", truncate_utf8(scrubber.clean(error))),
        ("gateway-status", b"" if status is None else str(status).encode()),
        ("gateway-source", previous.get("gateway-source", "").encode()),
        ("gateway-failed-at", when.encode()),
        (ATTEMPT_HEADER, str(attempt_of(previous) + 1).encode()),
        *([(RECORD_HEADER, record.encode())] if record is not None else []),
        # a reduced dead letter stays marked as one: its value is still not the original
        *(
            [(VALUE_DROPPED_HEADER, previous[VALUE_DROPPED_HEADER].encode())]
            if VALUE_DROPPED_HEADER in previous
            else []
        ),
    ]


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which dead letters to replay: one destination's, optionally narrowed by reason, time and count."""

    destination: str
    reasons: frozenset[str] = frozenset()  # empty: every reason
    since: datetime | None = None  # only records that failed at or after this time
    limit: int | None = None  # at most this many records replayed in this run

    def wants(self, headers: Mapping[str, str]) -> bool:
        """True when a record of this destination passes the reason and time filters."""
        if self.reasons and headers.get("gateway-reason", "") not in self.reasons:
            return False
        if self.since is not None:
            when = failed_at(headers)
            if when is None or when < self.since:
                return False
        return True


@dataclass(slots=True)
class ReplaySummary:
    """The tally of one replay run; printed as the final report."""

    destination: str
    dlq_topic: str
    group: str
    dry_run: bool = False
    total: int = 0  # dead letters between the group's position and the topic's end when the run started
    read: int = 0
    selected: int = 0
    delivered: int = 0
    failed: int = 0
    skipped_by_filter: int = 0
    skipped_not_taken: int = 0
    other_destinations: int = 0
    already_settled: int = 0  # settled by an interrupted run (its commit metadata said so): not sent again
    interrupted: bool = False
    reasons: Counter[str] = field(default_factory=Counter)  # selected records by their dead-letter reason

    @property
    def skipped(self) -> int:
        """This destination's records left out: by --reason/--since, or types it no longer takes."""
        return self.skipped_by_filter + self.skipped_not_taken

    @property
    def settled(self) -> int:
        """Selected records that reached a verdict (delivered, failed again or not taken)."""
        return self.delivered + self.failed + self.skipped_not_taken

    def report(self) -> str:
        """The final summary, several lines."""
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.reasons.items())) or "none"
        head = f"replay of {self.destination} from {self.dlq_topic} (group {self.group})"
        if self.dry_run:
            return (
                f"{head}: dry run, nothing sent and nothing committed\n"
                f"  would replay   {self.selected}  ({reasons})\n"
                f"  skipped        {self.skipped_by_filter}  (--reason/--since)\n"
                f"  other destinations' records left alone: {self.other_destinations}\n"
            )
        state = "interrupted; run it again to resume" if self.interrupted else "done"
        resumed = f"  already settled by the interrupted run: {self.already_settled}\n" if self.already_settled else ""
        return (
            f"{head}: {state}\n"
            f"  delivered      {self.delivered}\n"
            f"  failed again   {self.failed}  (written back to {self.dlq_topic} with {ATTEMPT_HEADER} incremented)\n"
            f"  skipped        {self.skipped}  (--reason/--since {self.skipped_by_filter}, "
            f"types {self.destination} does not take {self.skipped_not_taken})\n"
            f"  other destinations' records left alone: {self.other_destinations}\n"
            f"{resumed}"
        )


class ProgressBar:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, every: float = 5.0) -> None:
        self._stream = stream or sys.stderr
        self._width = width
        self._tty = self._stream.isatty()
        self._every = every
        self._last = float("-inf")  # the first update always draws

    def line(self, summary: ReplaySummary, in_flight: int) -> str:
        """The bar for the current tally."""
        done = summary.read
        fraction = min(1.0, done / summary.total) if summary.total else 1.0
        filled = int(fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        return (
            f"[{bar}] {done}/{summary.total} read  delivered {summary.delivered}  failed again {summary.failed}  "
            f"skipped {summary.skipped}  in flight {in_flight}"
        )

    def update(self, summary: ReplaySummary, in_flight: int, final: bool = False) -> None:
        """Draw the bar (throttled when not on a terminal)."""
        now = time.monotonic()
        if not self._tty and not final and now - self._last < self._every:
            return
        self._last = now
        text = self.line(summary, in_flight)
        if self._tty:
            self._stream.write("\r" + text + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


class ReplayOffsets(PartitionOffsets):
    """Partition offsets that report each message the moment all its records are settled."""

    __slots__ = ("_on_settled",)

    def __init__(self, on_settled: Callable[[int], None], settled_before: SettledAbove | None = None) -> None:
        super().__init__(settled_before)
        self._on_settled = on_settled

    def settle(self, offset: int, records: int = 1) -> bool:
        """Settle as usual; tell the replay when the whole message is done."""
        done = super().settle(offset, records)
        if done:
            self._on_settled(offset)
        return done


@dataclass(slots=True)
class PartitionSpan:
    """One DLQ partition's range for this run: where it starts, the end the broker reported, and progress."""

    start: int
    end: int
    read: int = 0
    done: bool = False

    def remaining(self, highwater: int | None) -> int:
        """Records this run reads from the partition (known exactly once done)."""
        if self.done:
            return self.read
        return max(self.read, max(self.end, highwater or 0) - self.start)
