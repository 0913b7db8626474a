"""Enable3 destination settings through the gateway's configuration: masking, scrubbing, startup errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config import parse
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
