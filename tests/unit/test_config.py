"""Unit tests for configuration loading: interpolation, strictness, routing defaults and masking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import binding
from gateway.errors import ConfigError
from tests.command_line import gateway
from tests.example_config import EXAMPLE_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.yaml"


def minimal(**destination: Any) -> dict[str, Any]:
    """A minimal valid configuration tree with one Unibo destination."""
    base: dict[str, Any] = {
        "name": "unibo",
        "connector": "unibo",
        "base_url": "http://127.0.0.1:1",
        "credentials": {"default": {"api_key": "${UNIBO_API_KEY}"}},
    }
    base.update(destination)
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["events"], "dlq_topic": "events.dlq"},
        "destinations": [base],
    }


def test_example_config_parses_with_every_option() -> None:
    """config/gateway.example.yaml is valid and resolves the documented defaults."""
    resolved = binding.load(EXAMPLE, env=EXAMPLE_ENV)
    unibo = resolved.destination("unibo")
    assert unibo.batch.max_events == 10_000
    assert unibo.batch.linger == 0.5
    assert unibo.concurrency == 4
    assert unibo.group_id(resolved.gateway.kafka.group_prefix) == "event-gateway.unibo"
    assert unibo.credentials["default"].api_key.get_secret_value() == EXAMPLE_ENV["UNIBO_API_KEY"]


def test_environment_interpolation_and_defaults() -> None:
    """${VAR} comes from the environment and ${VAR:-default} falls back; $$ is a literal dollar."""
    tree = minimal(base_url="${BASE:-http://fallback:8080}")
    tree["kafka"]["client_id"] = "cost$$"
    resolved = binding.parse(tree, env={"UNIBO_API_KEY": "k-123456"})
    destination = resolved.destination("unibo")
    assert destination.config.base_url == "http://fallback:8080"
    assert destination.credentials["default"].api_key.get_secret_value() == "k-123456"
    assert resolved.gateway.kafka.client_id == "cost$"


def test_missing_variable_names_key_and_variable() -> None:
    """A variable with no value and no default is a startup error naming the key and the variable."""
    with pytest.raises(ConfigError) as error:
        binding.parse(minimal(), env={})
    assert "destinations[0].credentials.default.api_key" in str(error.value)
    assert "UNIBO_API_KEY" in str(error.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t["kafka"].update(colour="blue"), "kafka.colour: unknown key"),
        (lambda t: t["destinations"][0].update(bacth={}), "destinations[0].bacth: unknown key"),
        (
            lambda t: t["destinations"][0]["credentials"]["default"].update(api_secret="x"),
            "destinations[0].credentials.default.api_secret: unknown key",
        ),
        (lambda t: t["destinations"][0].update(options={"colour": 1}), "destinations[0].options.colour: unknown key"),
        (lambda t: t["destinations"][0].update(batch={"max_events": 0}), "destinations[0].batch.max_events"),
        (lambda t: t["destinations"][0].update(connector="nope"), "destinations[0].connector: unknown connector"),
        (lambda t: t["destinations"][0].update(events=["deposit", "bogus"]), "destinations[0].events"),
        (lambda t: t["destinations"][0].update(events=["revenue"]), "does not take ['revenue']"),
        (lambda t: t["destinations"].append(dict(t["destinations"][0])), "destination names must be unique"),
        (lambda t: t["destinations"][0].update(base_url="ftp://x"), "destinations[0].base_url"),
    ],
    ids=[
        "kafka-extra",
        "destination-typo",
        "credentials-extra",
        "options-extra",
        "batch-zero",
        "connector",
        "event-type",
        "type-not-taken",
        "duplicate-name",
        "base-url",
    ],
)
def test_errors_name_the_offending_key(mutate: Any, expected: str) -> None:
    """Every invalid configuration fails with a message that names the key."""
    tree = minimal()
    tree.setdefault("http", {})
    mutate(tree)
    with pytest.raises(ConfigError) as error:
        binding.parse(tree, env={"UNIBO_API_KEY": "k"})
    assert expected in str(error.value)


def test_errors_never_echo_secret_values() -> None:
    """A wrong type next to a secret reports the key, never the secret's value."""
    tree = minimal()
    tree["destinations"][0]["credentials"]["default"]["api_key"] = ["sup3r-secret-value"]
    with pytest.raises(ConfigError) as error:
        binding.parse(tree, env={})
    assert "sup3r-secret-value" not in str(error.value)
    assert "api_key" in str(error.value)


def test_describe_masks_secrets() -> None:
    """The printable destination summary masks every secret and keeps the rest readable."""
    tree = minimal(proxy={"url": "http://10.0.0.5:3128", "username": "u", "password": "proxy-pass-999"})
    tree["kafka"]["security"] = {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "gw", "password": "sasl-pass-777"}}
    resolved = binding.parse(tree, env={"UNIBO_API_KEY": "key-abcdef-123"})
    text = repr(resolved.destination("unibo").describe())
    assert "key-abcdef-123" not in text
    assert "proxy-pass-999" not in text
    assert "**********" in text
    assert "10.0.0.5:3128" in text
    everything = repr(resolved) + str(resolved) + repr(resolved.destinations) + repr(resolved.gateway.model_dump())
    for secret in ("key-abcdef-123", "proxy-pass-999", "sasl-pass-777"):
        assert secret not in everything


def test_check_config_cli_masks_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway check-config` prints the resolved destinations masked and exits 1 naming a bad key."""
    good = tmp_path / "good.yaml"
    good.write_text(EXAMPLE.read_text().replace("change-me", "real-looking-key-42"))
    status = gateway("check-config", "--config", str(good))
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "real-looking-key-42" not in out + err
    assert '"name": "unibo"' in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("linger_ms: 500", "linger_ms: 500\n      lingr: 1"))
    status = gateway("check-config", "--config", str(bad))
    assert status == 1
    assert "destinations[0].batch.lingr: unknown key" in capsys.readouterr().err


def test_unloadable_kafka_tls_files_fail_at_startup(tmp_path: Path) -> None:
    """A CA file that exists but is not a certificate is a configuration error, found when the file is loaded."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    tree = minimal()
    tree["kafka"]["security"] = {"tls": {"enabled": True, "ca_file": str(bogus)}}
    with pytest.raises(ConfigError, match=r"tls\.ca_file"):
        binding.parse(tree, env={"UNIBO_API_KEY": "k"})


def test_secrets_lists_every_secret_for_the_scrubber() -> None:
    """secrets() finds the vendor keys, the proxy password and the SASL password (what logs and DLQ scrub)."""
    tree = minimal(proxy={"url": "http://10.0.0.5:3128", "username": "u", "password": "proxy-pass-999"})
    tree["kafka"]["security"] = {"sasl": {"mechanism": "PLAIN", "username": "gw", "password": "sasl-pass-777"}}
    resolved = binding.parse(tree, env={"UNIBO_API_KEY": "key-abcdef-123"})
    assert {"key-abcdef-123", "proxy-pass-999", "sasl-pass-777"} <= set(resolved.secrets())


async def test_fetch_max_wait_reaches_the_destination_consumer() -> None:
    """kafka.fetch_max_wait_ms (100 ms by default, not aiokafka's 500) is what each destination's consumer waits at most
    for records: a broker that holds idle fetches adds up to this much to every event's latency."""
    from pydantic import ValidationError  # noqa: PLC0415

    from gateway.config import KafkaConfig  # noqa: PLC0415
    from gateway.kafka_clients import destination_consumer  # noqa: PLC0415

    base = {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "dlq_topic": "t.dlq"}
    for given, waits in (({}, 100), ({"fetch_max_wait_ms": "250ms"}, 250)):
        consumer = destination_consumer(KafkaConfig(**base, **given), "g", "d")
        try:
            assert consumer._fetch_max_wait_ms == waits
        finally:
            await consumer.stop()
    with pytest.raises(ValidationError):
        KafkaConfig(**base, fetch_max_wait_ms=0)
