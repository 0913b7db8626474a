"""What the Enable3 sandbox checks in request bodies: the documented fields, their types, and the timestamp format."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")  # Enable3's examples: "2024-02-22 10:00:00" (UTC)
EVENT_REQUIRED = ("id", "userId", "eventId", "value", "createdAt")
EVENT_FIELDS = frozenset({*EVENT_REQUIRED, "eventTags"})
REVENUE_FIELDS = ("requestId", "revenue", "date")


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _non_empty_string(value: Any) -> bool:
    return type(value) is str and value != ""


def check_timestamp(field: str, value: Any) -> list[str]:
    """`YYYY-MM-DD HH:MM:SS`, a real date and time, no zone."""
    if type(value) is not str or not TIMESTAMP.match(value):
        return [f"{field} must be a string 'YYYY-MM-DD HH:MM:SS' (UTC)"]
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return [f"{field} is not a valid date and time"]
    return []


def validate_event(body: Any) -> list[str]:
    """Errors of a `POST /api/v1/event` body (empty when valid)."""
    if type(body) is not dict:
        return ["body must be a JSON object"]
    errors = [f"{name} is required" for name in EVENT_REQUIRED if name not in body]
    errors += [f"{name} is not a field of AppEventDto" for name in body if name not in EVENT_FIELDS]
    for name in ("id", "userId", "eventId"):
        if name in body and not _non_empty_string(body[name]):
            errors.append(f"{name} must be a non-empty string")
    if "value" in body and not _is_number(body["value"]):
        errors.append("value must be a number")
    tags = body.get("eventTags", [])
    if type(tags) is not list or not all(type(tag) is str for tag in tags):
        errors.append("eventTags must be an array of strings")
    if "createdAt" in body:
        errors += check_timestamp("createdAt", body["createdAt"])
    return errors


def validate_revenue(body: Any) -> list[str]:
    """Errors of a `POST /api/v1/revenue` body (empty when valid).

    Enable3 documents the path and USDT, but no body: so any non-empty JSON object or array passes, and only a body
    of the connector's default shape (it has a `requestId`) is checked field by field, as that assumption says.
    """
    if type(body) not in (dict, list) or not body:
        return ["body must be a non-empty JSON object or array"]
    if type(body) is not dict or "requestId" not in body:
        return []
    errors = [f"{name} is required" for name in REVENUE_FIELDS if name not in body]
    errors += [f"{name} is not a field of the revenue body" for name in body if name not in REVENUE_FIELDS]
    if "requestId" in body and not _non_empty_string(body["requestId"]):
        errors.append("requestId must be a non-empty string")
    if "revenue" in body and not _is_number(body["revenue"]):
        errors.append("revenue must be a number (USDT)")
    if "date" in body:
        errors += check_timestamp("date", body["date"])
    return errors


def validate_segments(body: Any) -> list[str]:
    """Errors of a segment body: Enable3 documents only "a JSON array", so only that (non-empty) is checked."""
    if type(body) is not list or not body:
        return ["body must be a non-empty JSON array"]
    return []
