"""Enable3 destination settings through the gateway's configuration: masking, scrubbing, startup errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.binding import parse
from gateway.errors import ConfigError

KEY, BEARER, SECRET = "e3-config-key-1", "e3-config-bearer-0123456789", "e3-config-hmac-secret"


def _tree(**destination: Any) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
        "destinations": [
            {"name": "e3", "connector": "enable3", "credentials": {"default": {"api_key": KEY}}, **destination}
        ],
    }


def test_secrets_are_masked_and_registered_for_scrubbing() -> None:
    """The key, the ambassador token and the callback secret never show in the summary, and are scrubbed."""
    resolved = parse(
        _tree(
            ambassador={"enabled": True, "token": BEARER},
            withdrawal_callback={"secret": SECRET, "topic": "withdrawals"},
        ),
        env={},
    )
    summary = orjson.dumps(resolved.destination("e3").describe()).decode()
    for secret in (KEY, BEARER, SECRET):
        assert secret not in summary and secret not in repr(resolved.destination("e3"))
        assert secret in resolved.secrets()
    assert '"topic":"withdrawals"' in summary


def test_ambassador_and_callback_are_off_by_default() -> None:
    """A plain destination enables neither the ambassador nor the callback."""
    settings = parse(_tree(), env={}).destination("e3").settings
    assert settings.ambassador.enabled is False and settings.withdrawal_callback is None


@pytest.mark.parametrize(
    ("destination", "names"),
    [
        ({"ambassador": {"enabled": True}}, "ambassador"),
        ({"withdrawal_callback": {"topic": "w"}}, "secret"),
        ({"options": {"statuses": {"gameround": ["x"]}}}, "statuses"),
        ({"callbacks": {}}, "callbacks"),
    ],
    ids=["ambassador-without-token", "callback-without-secret", "bad-status-type", "unknown-key"],
)
def test_mistakes_fail_at_startup_naming_the_key(destination: dict[str, Any], names: str) -> None:
    """Configuration mistakes are ConfigErrors that name the offending key."""
    with pytest.raises(ConfigError) as raised:
        parse(_tree(**destination), env={})
    assert names in str(raised.value)


@pytest.mark.parametrize(
    ("destination", "says"),
    [
        ({"ambassador": {"enabled": True, "token": "${AMB_TOKEN}"}}, "ambassador.token must be at least 16"),
        ({"withdrawal_callback": {"secret": "${CB_SECRET}", "topic": "w"}}, "withdrawal_callback.secret must be"),
        ({"withdrawal_callback": {"secret": "short-secret", "topic": "w"}}, "at least 16 characters, got 12"),
    ],
    ids=["empty-ambassador-token-var", "empty-callback-secret-var", "short-callback-secret"],
)
def test_empty_or_short_secrets_fail_check_config(destination: dict[str, Any], says: str) -> None:
    """An ambassador token or callback secret from a `${VAR}` set to "", or shorter than 16 characters, is refused
    at startup, and the message never shows the value."""
    with pytest.raises(ConfigError, match=says) as caught:
        parse(_tree(**destination), env={"AMB_TOKEN": "", "CB_SECRET": ""})
    assert "short-secret" not in str(caught.value)


def test_the_callback_can_have_its_own_listener_with_tls_only_there() -> None:
    """`listen` puts the callback on its own port; `tls` without `listen` is a startup error."""
    resolved = parse(_tree(withdrawal_callback={"secret": SECRET, "topic": "w", "listen": "0.0.0.0:9111"}), env={})
    assert resolved.destinations[0].settings.withdrawal_callback.listen == "0.0.0.0:9111"
    with pytest.raises(ConfigError, match=r"needs withdrawal_callback\.listen"):
        parse(
            _tree(withdrawal_callback={"secret": SECRET, "topic": "w", "tls": {"cert_file": __file__,
                                                                             "key_file": __file__}}),
            env={},
        )  # fmt: skip
