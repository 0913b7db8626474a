"""UserWise integration helpers: the destination block, and what UserWise must end up with, computed from the vendor
rules independently of the connector's code (event_uids, transaction_ids, final attributes, per-player timelines)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

USERWISE_KEY = "test-userwise-app-key"
USERWISE_SECRET = "test-userwise-company-secret"

# The connector's default profile allow-list, restated from its documentation: what may leave the gateway.
ALLOWED_PROFILE_FIELDS = (
    "registered_at", "country", "currency", "locale", "timezone", "affiliate", "traffic_source", "status", "tags",
    "is_blocked", "self_excluded", "consent_email", "consent_sms", "consent_push",
)  # fmt: skip
PII_FIELDS = ("email", "phone", "first_name", "last_name", "username", "birthday", "city", "ip", "user_agent")
Timeline = list[tuple[str, str]]


def userwise_destination(
    url: str, key: str = USERWISE_KEY, secret: str = USERWISE_SECRET, **extra: Any
) -> dict[str, Any]:
    """A UserWise destination pointing at a sandbox, with fast retries so tests stay short."""
    destination: dict[str, Any] = {
        "name": "userwise",
        "connector": "userwise",
        "base_url": url,
        "credentials": {"default": {"api_key": key, "secret_key": secret}},
        "batch": {"max_events": 500, "linger_ms": 50},
        "retry": {"initial": 0.05, "max": 0.5, "retry_after_cap": 5.0, "halt_probe": 0.5},
        "timeout": 5.0,
    }
    destination.update(extra)
    return destination


def userwise_time(text: str) -> str:
    """An RFC 3339 time in UserWise's datetime format."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _profile_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "tags":
        return ",".join(value)
    if name == "registered_at":
        return userwise_time(value)
    if name in ("country", "currency"):
        return value.upper()
    return value


@dataclass
class Expected:
    """What the UserWise sandbox must hold after a stream."""

    event_uids: set[str] = field(default_factory=set)
    transaction_ids: set[str] = field(default_factory=set)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    timelines: dict[str, Timeline] = field(default_factory=dict)


def expected_at_userwise(events: Iterable[dict[str, Any]]) -> Expected:
    """Apply the vendor rules (docs/vendors/userwise.md, connectors/userwise/README.md) to a stream, in source order."""
    expected = Expected()
    for event in events:
        kind, uid, player = event["type"], event["event_id"], event.get("player_id")
        if player is None:
            continue  # game catalog entries and operator-level revenue are not about an app user
        timeline = expected.timelines.setdefault(player, [])
        attributes = expected.attributes.setdefault(player, {})
        succeeded = event.get("status", "success") == "success"
        if kind == "deposit" and succeeded:
            expected.transaction_ids.add(event["transaction_id"])
            expected.event_uids.add(uid)
            timeline += [("revenue_events", event["transaction_id"]), ("events", uid)]
        elif (kind == "withdrawal" and succeeded) or kind in ("gameround", "custom"):
            expected.event_uids.add(uid)
            timeline.append(("events", uid))
        elif kind == "login" and event.get("success", True):
            expected.event_uids.add(uid)
            timeline += [("events", uid), ("attributes", "last_login")]
            attributes["last_login"] = userwise_time(event["occurred_at"])
        elif kind == "revenue":
            # A refund is a transaction of its own (UserWise: a new id with a negative amount), named by its event.
            refund = event.get("kind") == "refund"
            key = f"{event['revenue_id']}:refund:{uid}" if refund else event["revenue_id"]
            expected.transaction_ids.add(key)
            timeline.append(("revenue_events", key))
        elif kind == "player":
            for name in ALLOWED_PROFILE_FIELDS:
                if name in event:
                    attributes[name] = _profile_value(name, event[name])
                    timeline.append(("attributes", name))
    return expected


def collapsed(timeline: Iterable[tuple[str, str]]) -> Timeline:
    """A timeline with each run of attribute upserts as one entry (one request may carry several profile changes)."""
    result: Timeline = []
    for endpoint, ident in timeline:
        if endpoint == "attributes":
            if result and result[-1] == ("attributes", "*"):
                continue
            result.append(("attributes", "*"))
        else:
            result.append((endpoint, ident))
    return result
