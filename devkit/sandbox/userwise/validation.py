"""Validation of the three UserWise bodies (events, revenue_events, attributes) as the server API documents them.

UserWise publishes no error format; the sandbox answers
422 `{"errors": [{"path": "events[0].event_id", "message": ...}]}`.
Where the document is silent the sandbox is strict on shape (unknown top-level keys, wrong types, a `value` that does
not fit its `data_type`), because that catches mapping bugs before a real app does.
"""

from __future__ import annotations

import re
from typing import Any

ErrorDetail = dict[str, str]
DATA_TYPES = frozenset({"string", "boolean", "integer", "float", "datetime"})
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _error(path: str, message: str) -> ErrorDetail:
    return {"path": path, "message": message}


def _fits(value: Any, data_type: str) -> bool:
    if value is None:
        return True  # "value: any"; a null upsert clears the attribute
    if data_type == "string":
        return type(value) is str
    if data_type == "boolean":
        return type(value) is bool
    if data_type == "integer":
        return type(value) is int
    if data_type == "float":
        return type(value) in (int, float)
    return type(value) is str and _DATETIME.fullmatch(value) is not None  # datetime: YYYY-MM-DDTHH:MM:SSZ


def _attributes(value: Any, path: str, *, value_required: bool) -> list[ErrorDetail]:
    if type(value) is not list:
        return [_error(path, "must be an array")]
    errors: list[ErrorDetail] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if type(item) is not dict:
            errors.append(_error(where, "must be an object"))
            continue
        if type(item.get("name")) is not str or not item["name"]:
            errors.append(_error(f"{where}.name", "is required and must be a non-empty string"))
        if value_required and "value" not in item:
            errors.append(_error(f"{where}.value", "is required"))
        data_type = item.get("data_type")
        if data_type is not None and data_type not in DATA_TYPES:
            errors.append(_error(f"{where}.data_type", f"must be one of {sorted(DATA_TYPES)}"))
        elif data_type is not None and not _fits(item.get("value"), data_type):
            errors.append(_error(f"{where}.value", f"does not fit data_type {data_type}"))
    return errors


def _event(item: dict[str, Any], path: str) -> list[ErrorDetail]:
    errors = []
    if type(item.get("event_id")) is not str or not item["event_id"]:
        errors.append(_error(f"{path}.event_id", "is required and must be a non-empty string"))
    if "attributes" in item:
        errors += _attributes(item["attributes"], f"{path}.attributes", value_required=False)
    return errors


def _revenue_event(item: dict[str, Any], path: str) -> list[ErrorDetail]:
    errors = []
    if type(item.get("revenue")) not in (int, float):
        errors.append(_error(f"{path}.revenue", "is required and must be a number"))
    for name in ("transaction_id", "product_id", "revenue_type"):
        if name in item and type(item[name]) is not str:
            errors.append(_error(f"{path}.{name}", "must be a string"))
    if "attributes" in item:
        errors += _attributes(item["attributes"], f"{path}.attributes", value_required=False)
    return errors


def validate(endpoint: str, body: Any) -> tuple[list[dict[str, Any]], list[ErrorDetail]]:
    """The body's items, and what is wrong with it (empty when valid)."""
    if type(body) is not dict:
        return [], [_error("", "body must be a JSON object")]
    errors = [_error(key, "unknown field") for key in body if key != endpoint]
    items = body.get(endpoint)
    if type(items) is not list or not items:
        return [], [*errors, _error(endpoint, "is required and must be a non-empty array")]
    if endpoint == "attributes":
        return items, errors + _attributes(items, endpoint, value_required=True)
    check = _event if endpoint == "events" else _revenue_event
    for index, item in enumerate(items):
        if type(item) is not dict:
            errors.append(_error(f"{endpoint}[{index}]", "must be an object"))
        else:
            errors += check(item, f"{endpoint}[{index}]")
    return items, errors
