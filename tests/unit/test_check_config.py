"""check-config as a preflight: every error in one run, refused secrets and URLs, clashes, durations, hints."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import binding
from gateway.cli import main
from gateway.errors import ConfigError
from tests.example_config import EXAMPLE_CONFIG, EXAMPLE_ENV


def tree(*destinations: dict[str, Any], http: str = "0.0.0.0:9108") -> dict[str, Any]:
    """A configuration tree around `destinations` (one Unibo destination by default)."""
    unibo = {
        "name": "unibo",
        "connector": "unibo",
        "base_url": "https://consumer.unibo.io",
        "credentials": {"default": {"api_key": "${UNIBO_API_KEY}"}},
    }
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["events"], "dlq_topic": "events.dlq"},
        "http": {"listen": http},
        "destinations": list(destinations) or [unibo],
    }


def errors_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    """The error lines config.parse reports for `data` (none: it must fail)."""
    with pytest.raises(ConfigError) as failure:
        binding.parse(data, env={"UNIBO_API_KEY": "unibo-key-0123456789"} if env is None else env)
    return str(failure.value).splitlines()


def check_config(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run `gateway check-config --config PATH` in-process; (exit status, stdout, stderr)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["check-config", "--config", str(path)])
    return status, out.getvalue(), err.getvalue()


def test_every_error_is_reported_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset variables, an unknown key, a bad value, a placeholder and a base_url with the API path: one run."""
    for name in ("UNIBO_API_KEY", "ENABLE3_API_KEY", "KAFKA_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    data = tree(
        {
            "name": "unibo",
            "connector": "unibo",
            "credentials": {"default": {"api_key": "${UNIBO_API_KEY}"}},
            "batch": {"max_events": 0},
        },
        {
            "name": "enable3",
            "connector": "enable3",
            "credentials": {"default": {"api_key": "${ENABLE3_API_KEY}"}},
            "options": {"colour": "blue"},
        },
        {
            "name": "userwise",
            "connector": "userwise",
            "base_url": "https://api.userwise.io/api/v1",
            "credentials": {"default": {"api_key": "change-me", "secret_key": "userwise-secret-0123456789"}},
        },
    )
    data["kafka"]["bootstrap_servers"] = "${KAFKA_SERVERS}"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    status, _, err = check_config(path, {}, monkeypatch)
    assert status == 1
    for expected in (
        "kafka.bootstrap_servers: environment variable KAFKA_SERVERS is not set",
        "destinations[0].credentials.default.api_key: environment variable UNIBO_API_KEY is not set",
        "destinations[1].credentials.default.api_key: environment variable ENABLE3_API_KEY is not set",
        "destinations[0].batch.max_events: Input should be greater than or equal to 1",
        "destinations[1].options.colour: unknown key",
        "destinations[2].credentials.default.api_key: still the placeholder 'change-me'",
        "destinations[2].base_url: already holds /api/v1",
    ):
        assert expected in err, err
    assert "7 error(s)" in err
    assert "empty secret" not in err  # an unset variable is reported once, not again as the empty value it left


def with_proxy_password(value: str) -> dict[str, Any]:
    """A tree whose destination's proxy password is `value`."""
    data = tree()
    data["destinations"][0]["proxy"] = {"url": "http://10.0.0.5:3128", "username": "gw", "password": value}
    return data


def with_sasl_password(value: str) -> dict[str, Any]:
    """A tree whose Kafka SASL password is `value`."""
    data = tree()
    data["kafka"]["security"] = {"sasl": {"mechanism": "PLAIN", "username": "gw", "password": value}}
    return data


def with_api_key(value: str) -> dict[str, Any]:
    """A tree whose Unibo key is `value`."""
    data = tree()
    data["destinations"][0]["credentials"]["default"]["api_key"] = value
    return data


@pytest.mark.parametrize("value", ["", "   ", "change-me", "CHANGE-ME"], ids=["empty", "blank", "placeholder", "upper"])
@pytest.mark.parametrize(
    ("build", "path"),
    [
        (with_api_key, "destinations[0].credentials.default.api_key"),
        (with_proxy_password, "destinations[0].proxy.password"),
        (with_sasl_password, "kafka.security.sasl.password"),
    ],
    ids=["vendor-key", "proxy-password", "sasl-password"],
)
def test_empty_and_placeholder_secrets_are_refused(value: str, build: Any, path: str) -> None:
    """A vendor key, a proxy password and a SASL password that are empty or the example's placeholder are errors."""
    (line,) = errors_of(build(value))
    assert line.startswith(path + ": "), line
    if value.strip():
        assert f"still the placeholder {value!r}" in line
    assert "real-key" not in line


def test_the_example_config_with_its_placeholders_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/gateway.example.yaml names its secrets `change-me`: each one must be set before it checks out."""
    for name in EXAMPLE_ENV:
        monkeypatch.delenv(name, raising=False)
    status, _, err = check_config(EXAMPLE_CONFIG, {}, monkeypatch)
    assert status == 1
    assert err.count("still the placeholder 'change-me") == 5, err
    status, out, err = check_config(EXAMPLE_CONFIG, EXAMPLE_ENV, monkeypatch)
    assert status == 0, err
    for secret in EXAMPLE_ENV.values():
        assert secret not in out + err


@pytest.mark.parametrize(
    ("connector", "base_url", "root"),
    [
        ("unibo", "https://consumer.unibo.io/api/v1", "https://consumer.unibo.io"),
        ("enable3", "https://integration.enable3.io/api/v1/", "https://integration.enable3.io"),
        ("userwise", "https://api.userwise.io/api/v1/appuser", "https://api.userwise.io"),
        ("userwise", "https://gw.example.com/userwise/api/v1", "https://gw.example.com/userwise"),
    ],
    ids=["unibo", "enable3-slash", "userwise-deeper", "behind-a-prefix"],
)
def test_base_url_holding_the_api_path_is_refused(connector: str, base_url: str, root: str) -> None:
    """The connector appends /api/v1 itself: a base_url that already holds it would 404 on every request."""
    credentials = {"api_key": "real-key-0123456789"}
    if connector == "userwise":
        credentials["secret_key"] = "real-secret-0123456789"
    data = tree({"name": "d", "connector": connector, "base_url": base_url, "credentials": {"default": credentials}})
    (line,) = errors_of(data)
    assert line.startswith("destinations[0].base_url: already holds /api/v1")
    assert line.endswith(f"use {root}")


def test_base_url_with_another_path_is_accepted() -> None:
    """A path prefix that is not the API path (a reverse proxy's) is left alone."""
    data = tree()
    data["destinations"][0]["base_url"] = "https://egress.example.com/unibo"
    binding.parse(data, env={"UNIBO_API_KEY": "unibo-key-0123456789"})


def intarget(listen: str) -> dict[str, Any]:
    """An InTarget destination whose feed server listens on `listen`."""
    return {
        "name": "intarget",
        "connector": "intarget",
        "store": "sqlite:///intarget.db",
        "feed": {"listen": listen, "token": "feed-token-0123456789"},
    }


@pytest.mark.parametrize(
    ("http", "feed", "clash"),
    [
        ("0.0.0.0:9108", "0.0.0.0:9108", True),
        ("127.0.0.1:9108", "0.0.0.0:9108", True),
        ("10.0.0.1:9108", "10.0.0.2:9108", False),
        ("0.0.0.0:9108", "0.0.0.0:9110", False),
        ("127.0.0.1:0", "127.0.0.1:0", False),
    ],
    ids=["same", "wildcard-covers-loopback", "two-addresses", "two-ports", "port-zero"],
)
def test_listener_port_clash_is_refused(http: str, feed: str, clash: bool) -> None:
    """http.listen and InTarget's feed.listen on one port (one of them a wildcard) cannot both bind."""
    data = tree(intarget(feed), http=http)
    if not clash:
        binding.parse(data, env={})
        return
    (line,) = errors_of(data, env={})
    assert line.startswith("destinations[0].feed.listen: port 9108 is also http.listen")


def test_loopback_metrics_listener_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """http.listen on loopback validates, with a warning that container probes cannot reach it."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(tree(http="127.0.0.1:9108")))
    status, _, err = check_config(path, {"UNIBO_API_KEY": "unibo-key-0123456789"}, monkeypatch)
    assert status == 0
    assert "warning: http.listen: 127.0.0.1:9108 is a loopback address" in err
    path.write_text(yaml.safe_dump(tree(http="0.0.0.0:9108")))
    status, _, err = check_config(path, {"UNIBO_API_KEY": "unibo-key-0123456789"}, monkeypatch)
    assert status == 0
    assert "warning" not in err


def test_durations_take_units_everywhere() -> None:
    """`10s`, `500ms` and `2m` work wherever a duration is configured, seconds and _ms keys alike."""
    data = tree(intarget("0.0.0.0:9110"))
    data["kafka"].update(commit_interval="500ms", lag_interval="2m", session_timeout_ms="10s")
    data["shutdown"] = {"grace_period": "1m"}
    data["destinations"].append(
        {
            "name": "enable3",
            "connector": "enable3",
            "credentials": {"default": {"api_key": "enable3-key-0123456789"}},
            "timeout": "10s",
            "batch": {"linger_ms": "2s"},
            "retry": {"initial": "200ms", "max": "2m", "retry_after_cap": "5m", "halt_probe": "30s"},
            "ambassador": {"timeout": "1500ms"},
        }
    )
    data["destinations"][0]["feed"]["watermark_wait"] = "10s"
    data["destinations"][0]["purge_interval"] = "1h"
    resolved = binding.parse(data, env={})
    kafka = resolved.gateway.kafka
    assert (kafka.commit_interval, kafka.lag_interval, kafka.session_timeout_ms) == (0.5, 120.0, 10_000)
    assert resolved.gateway.shutdown.grace_period == 60.0
    enable3 = resolved.destination("enable3")
    assert enable3.config.timeout == 10.0
    assert enable3.batch.linger == 2.0
    assert enable3.config.retry.model_dump() == {
        "initial": 0.2,
        "max": 120.0,
        "retry_after_cap": 300.0,
        "halt_probe": 30.0,
    }
    assert enable3.settings.ambassador.timeout == 1.5
    feed_store = resolved.destination("intarget").settings
    assert (feed_store.feed.watermark_wait, feed_store.purge_interval) == (10.0, 3600.0)
    data["destinations"][1]["timeout"] = "10 parsecs"
    (line,) = errors_of(data, env={})
    assert line.startswith("destinations[1].timeout: must be a duration")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t["kafka"].update(dlq_topik="x"), "kafka.dlq_topik: unknown key (did you mean 'dlq_topic'?)"),
        (
            lambda t: t["destinations"][0].update(batch={"linger": 5}),
            "destinations[0].batch.linger: unknown key (did you mean 'linger_ms'?)",
        ),
        (
            lambda t: t["destinations"][0].update(credential={}),
            "destinations[0].credential: unknown key (did you mean 'credentials'?)",
        ),
        (
            lambda t: t["destinations"][0].update(options={"send_usernames": True}),
            "destinations[0].options.send_usernames: unknown key (did you mean 'send_username'?)",
        ),
        (lambda t: t.update(loging={}), "loging: unknown key (did you mean 'logging'?)"),
        (lambda t: t["kafka"].update(colour="blue"), "kafka.colour: unknown key"),
    ],
    ids=["kafka", "batch", "destination", "connector-options", "root", "no-close-match"],
)
def test_unknown_key_suggests_the_closest_known_one(mutate: Any, expected: str) -> None:
    """An unknown key names the closest known key at the same place, when one is close."""
    data = tree()
    mutate(data)
    lines = errors_of(data)
    assert expected in lines, lines


def test_unknown_key_of_a_connector_destination_suggests_its_settings() -> None:
    """A typo in a connector's own destination key (InTarget's feed) is matched against those keys too."""
    data = tree(intarget("0.0.0.0:9110"))
    data["destinations"][0]["feeds"] = data["destinations"][0].pop("feed")
    lines = errors_of(data, env={})
    assert "destinations[0].feeds: unknown key (did you mean 'feed'?)" in lines, lines


def test_yaml_error_keeps_the_parsers_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A YAML syntax error says where and why, in the parser's words, without quoting the line."""
    path = tmp_path / "gateway.yaml"
    path.write_text("kafka:\n  topics: [events\n  dlq_topic: secret-looking-line\n")
    status, _, err = check_config(path, {}, monkeypatch)
    assert status == 1
    assert "not valid YAML at line 3, column 12: while parsing a flow sequence; expected ',' or ']'" in err, err
    assert "secret-looking-line" not in err


def test_proxy_error_is_reported_once_as_a_proxy_error() -> None:
    """A bad proxy URL, long form or short, gives one line about the proxy and no 'valid string' echo."""
    for proxy in ("ftp://proxy:3128", {"url": "ftp://proxy:3128"}):
        data = tree()
        data["destinations"][0]["proxy"] = proxy
        lines = errors_of(data)
        assert lines == [
            "destinations[0].proxy.url: must be http://host:port or https://host:port (put credentials "
            "in username/password)"
        ], lines


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("earliest", "earliest"),
        ("latest", "latest"),
        ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00+00:00"),
        ("2026-12-01T02:00:00+02:00", "2026-12-01T02:00:00+02:00"),
    ],
)
def test_start_from_takes_a_policy_or_a_zoned_time(value: str, expected: str) -> None:
    """start_from is earliest, latest or an RFC 3339 time with a zone."""
    data = tree()
    data["destinations"][0]["start_from"] = value
    resolved = binding.parse(data, env={"UNIBO_API_KEY": "unibo-key-0123456789"})
    assert resolved.destination("unibo").config.start_from == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yesterday", "must be earliest, latest or an RFC 3339 time"), ("2026-12-01T00:00:00", "needs a zone")],
)
def test_start_from_refuses_anything_else(value: str, expected: str) -> None:
    """A start_from that is neither a policy nor a zoned time names the key."""
    data = tree()
    data["destinations"][0]["start_from"] = value
    (line,) = errors_of(data)
    assert line.startswith("destinations[0].start_from: ")
    assert expected in line


@pytest.mark.parametrize(
    ("connector", "url"),
    [
        ("unibo", "https://consumer.unibo.io"),
        ("enable3", "https://integration.enable3.io"),
        ("userwise", "https://api.userwise.io"),
    ],
)
def test_a_destination_without_base_url_shows_the_vendors_production_url(connector: str, url: str) -> None:
    """Left out, base_url is the vendor's production URL: check-config prints it and --connect checks that host."""
    credentials = {"api_key": "real-key-0123456789", "secret_key": "real-secret-0123456789"}
    if connector != "userwise":
        del credentials["secret_key"]
    data = tree({"name": "d", "connector": connector, "credentials": {"default": credentials}})
    destination = binding.parse(data, env={}).destination("d")
    assert destination.config.base_url == url
    assert destination.describe()["base_url"] == url


def test_a_destination_with_a_bad_key_still_has_its_other_problems_reported() -> None:
    """A bad timeout and an unknown retry key do not hide the same destination's empty key and base_url path."""
    data = tree(
        {
            "name": "enable3",
            "connector": "enable3",
            "base_url": "https://integration.enable3.io/api/v1",
            "credentials": {"default": {"api_key": " "}},
            "timeout": "5 seconds",
            "retry": {"inital": 1},
        }
    )
    lines = errors_of(data)
    assert [line.split(":")[0] for line in lines] == [
        "destinations[0].retry.inital",
        "destinations[0].timeout",
        "destinations[0].base_url",
        "destinations[0].credentials.default.api_key",
    ], lines
