"""Structured logging: JSON off a terminal, console on demand, secrets scrubbed from every field."""

from __future__ import annotations

import io
import logging

import orjson
import structlog

from gateway.logs import MASK, SecretScrubber, configure, destination_logger, scrubber


def test_json_lines_with_secrets_masked() -> None:
    """Off a terminal each line is one JSON object; registered secrets and sensitive keys are masked everywhere."""
    stream = io.StringIO()
    configure("info", "auto", stream=stream)
    scrubber.register(["s3cr3t-value-xyz"])
    log = structlog.get_logger("test")
    log.info(
        "batch",
        destination="unibo",
        records=3,
        api_key="raw-key-123",
        detail="bad s3cr3t-value-xyz here",
        nested={"password": "p4ss", "list": ["s3cr3t-value-xyz"]},
    )
    try:
        raise ValueError("boom s3cr3t-value-xyz")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiokafka").warning("foreign s3cr3t-value-xyz")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "batch"
    assert lines[0]["records"] == 3
    assert lines[0]["api_key"] == MASK
    assert lines[0]["nested"]["password"] == MASK
    assert "s3cr3t-value-xyz" not in stream.getvalue()
    assert any(line.get("event") == "foreign " + MASK for line in lines)


def test_console_renderer_when_asked() -> None:
    """format=console renders human-readable lines rather than JSON."""
    stream = io.StringIO()
    configure("info", "console", stream=stream)
    structlog.get_logger("test").info("hello", destination="unibo")
    text = stream.getvalue()
    assert "hello" in text
    assert not text.lstrip().startswith("{")
    configure("info", "json", stream=io.StringIO())


def test_short_values_are_not_registered() -> None:
    """Secrets shorter than four characters are ignored, so masking cannot wreck every line."""
    local = SecretScrubber()
    local.register(["ab", "long-secret"])
    assert local.clean("ab long-secret") == f"ab {MASK}"


def test_a_destination_logger_names_its_destination_on_every_line_under_the_latest_configuration() -> None:
    """Made before `configure` (as a pipeline is), its lines still follow the configuration of when they are written:
    level, format and destination, under the module's logger name."""
    configure("error", "json", stream=io.StringIO())
    log = destination_logger("gateway.pipeline", "unibo-eu")  # a bound logger would keep filtering below error
    stream = io.StringIO()
    configure("info", "json", stream=stream)
    log.debug("hidden")
    log.info("pipeline started", group="g")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["destination"], line["logger"], line["group"]) for line in lines] == [
        ("pipeline started", "unibo-eu", "gateway.pipeline", "g")
    ]
    configure("info", "json", stream=io.StringIO())


def test_a_secret_holding_another_is_masked_whole_and_plain_values_pass() -> None:
    """Secrets are matched longest first, so no tail of a longer secret survives a shorter one's mask; numbers,
    booleans and None pass untouched, and sensitive keys are masked whatever their case, at any depth."""
    local = SecretScrubber()
    local.register(["key-1234", "key-1234-and-more"])
    line = local(
        None,
        "info",
        {
            "event": "x key-1234-and-more y key-1234",
            "records": 3,
            "ratio": 0.5,
            "ok": True,
            "none": None,
            "API_KEY": "anything",
            "nested": [{"Token": "t", "text": "key-1234-and-more"}],
        },
    )
    assert line["event"] == f"x {MASK} y {MASK}"
    assert (line["records"], line["ratio"], line["ok"], line["none"]) == (3, 0.5, True, None)
    assert line["API_KEY"] == MASK
    assert line["nested"] == [{"Token": MASK, "text": MASK}]
