"""The InTarget "vendor client": delivery is one store transaction per batch (committed = delivered)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

import asyncpg
import orjson
import structlog

from connectors.intarget.config import IntargetCredentials
from connectors.intarget.store import FeedStore, StoreUnavailable
from gateway.connector import ClientContext, VendorRecord
from gateway.errors import ConfigError
from gateway.outcomes import Outcome, SendResult

log = structlog.get_logger("connectors.intarget.client")

# A record the store refuses for what it holds (never for the store's state), so retrying can never succeed:
# isolate it and dead-letter it. (CustomFieldLimit is a ValueError.)
DATA_ERRORS: Final[tuple[type[BaseException], ...]] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,  # a value of a type SQLite cannot bind
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,  # e.g. an index row too large for an id: it can never succeed
    orjson.JSONDecodeError,
    KeyError,
    TypeError,
    ValueError,
    ArithmeticError,
)
MAX_DETAIL = 500


class IntargetClient:
    """Writes each batch through the destination's feed store (the extension's `shared`)."""

    def __init__(self, context: ClientContext) -> None:
        if not isinstance(context.shared, FeedStore):
            raise ConfigError(f"destination {context.destination.name}: the InTarget feed store is not running")
        self._store = context.shared

    async def send(self, credentials: IntargetCredentials, records: Sequence[VendorRecord]) -> SendResult:
        """Commit the batch in one transaction; a store outage retries, a bad record is isolated and dead-lettered."""
        try:
            await self._store.write(records)
        except StoreUnavailable as error:
            return SendResult(Outcome.RETRY, 0, reason="store_unavailable", detail=str(error)[:MAX_DETAIL])
        except DATA_ERRORS as error:
            return SendResult(
                Outcome.REJECT, 0, reason="store_refused", detail=f"{type(error).__name__}: {error}"[:MAX_DETAIL]
            )
        except Exception as error:  # unknown: keep the records and retry rather than dead-letter a whole stream
            log.exception("store write failed", records=len(records))
            return SendResult(Outcome.RETRY, 0, reason="store_error", detail=type(error).__name__)
        return SendResult(Outcome.DELIVERED, 200)

    async def close(self) -> None:
        """Nothing to release: the store belongs to the extension."""
