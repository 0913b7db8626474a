"""The gateway's one exception tree, grouped by what the caller does with each error.

    GatewayError
    ├── ConfigError                 abort at startup: the configuration is wrong
    └── EventError                  skip: dead-letter this one message, keep the pipeline running
        ├── InvalidJson             reason invalid_json: the message is not a UTF-8 JSON object
        ├── InvalidEvent            reason invalid_event: JSON, but not a valid normalized event
        ├── UnknownBrand            reason unknown_brand: no credentials for the event's brand
        ├── MappingError            reason mapping_error: the connector cannot express the event for its vendor
        └── UnsupportedCurrency     reason unsupported_currency: the vendor only accepts other currencies

Vendor responses are not exceptions: they are classified into the closed `Outcome` set (gateway.outcomes); a record
the vendor refuses is dead-lettered as `rejected`. `DeadLetterReason` is the one list of reasons (docs/dead-letters.md).
"""

from __future__ import annotations

import enum
from typing import ClassVar


class DeadLetterReason(enum.StrEnum):
    """Why a message went to the dead-letter topic: its `gateway-reason` header, a contract of docs/dead-letters.md."""

    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    UNKNOWN_BRAND = "unknown_brand"
    MAPPING_ERROR = "mapping_error"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    REJECTED = "rejected"  # the vendor refused the record (gateway.outcomes.Outcome.REJECT)
    PARKING_REFUSED = "parking_refused"  # the parking topic refused the record (too large): gateway.parking


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message names the offending key and never contains a secret."""


class EventError(GatewayError):
    """One message cannot be delivered; it goes to the dead-letter topic with `reason`."""

    reason: ClassVar[DeadLetterReason] = DeadLetterReason.INVALID_EVENT

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidJson(EventError):
    """The message value is not a UTF-8 JSON object."""

    reason = DeadLetterReason.INVALID_JSON


class InvalidEvent(EventError):
    """The message is JSON but fails the normalized event contract."""

    reason = DeadLetterReason.INVALID_EVENT


class UnknownBrand(EventError):
    """The event's brand has no credentials at this destination; it never falls back to another tenant."""

    reason = DeadLetterReason.UNKNOWN_BRAND


class MappingError(EventError):
    """The connector cannot express this event in its vendor's schema."""

    reason = DeadLetterReason.MAPPING_ERROR


class UnsupportedCurrency(EventError):
    """The vendor accepts only specific currencies and the gateway never converts silently."""

    reason = DeadLetterReason.UNSUPPORTED_CURRENCY
