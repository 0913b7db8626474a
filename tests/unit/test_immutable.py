"""`@immutable` value objects: frozen to mypy, plain slots (and so cheaper to build) at run time."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

from gateway.outcomes import Outcome, SendResult


def test_assigning_a_field_is_a_type_error(tmp_path: Path) -> None:
    """The guarantee a frozen dataclass gave is kept where the gateway relies on it: in `mypy --strict`."""
    snippet = tmp_path / "mutates.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from gateway.outcomes import Outcome, SendResult

            result = SendResult(Outcome.DELIVERED, 204)
            result.status = 500
            """
        )
    )
    out, _, status = api.run(
        ["--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), str(snippet)]
    )
    assert status == 1
    assert 'Property "status" defined in "SendResult" is read-only' in out


def test_instances_are_slotted_values() -> None:
    """Equal by value, no instance dict (the memory of a slotted class), and built with keywords and defaults."""
    result = SendResult(Outcome.RETRY, 503, reason="http_503", retry_after=1.5)
    assert result == SendResult(Outcome.RETRY, 503, "http_503", "", 1.5)
    assert result != SendResult(Outcome.RETRY, 503)
    assert not hasattr(result, "__dict__")
    assert (result.delivered, result.duplicates) == (None, 0)
