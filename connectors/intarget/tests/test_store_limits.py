"""What the store can never hold is refused (REJECT, so dead-lettered), never retried forever."""

from __future__ import annotations

import dataclasses
import random

from connectors.intarget.config import IntargetCredentials
from connectors.intarget.store import FeedStore
from connectors.intarget.store_postgres import PostgresStore
from connectors.intarget.store_writes import MAX_STORE_CUSTOM_FIELDS
from connectors.intarget.tests.test_contract import store_client
from connectors.intarget.tests.test_store import player, records
from gateway.outcomes import Outcome

NO_CREDENTIALS = IntargetCredentials()


def _deposit(event_id: str, transaction_id: str) -> dict[str, object]:
    return {"event_id": event_id, "type": "deposit", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
            "transaction_id": transaction_id, "amount": "10", "currency": "EUR"}  # fmt: skip


async def test_an_id_too_long_for_the_index_is_refused_not_retried(store: FeedStore) -> None:
    """A 12,000-character transaction id (past the contract, e.g. from an older producer) cannot be indexed on
    PostgreSQL: that is the record's fault, so REJECT (the engine isolates and dead-letters it), never RETRY."""
    (record,) = records(_deposit("d-long", "tx-long"))
    incompressible = random.Random(1).randbytes(6_000).hex().encode()  # 12,000 characters TOAST cannot shrink
    huge = dataclasses.replace(record, body=record.body.replace(b"tx-long", incompressible))
    result = await store_client(store).send(NO_CREDENTIALS, [huge])
    if isinstance(store, PostgresStore):
        assert result.outcome is Outcome.REJECT
        assert result.reason == "store_refused"
        assert "ProgramLimitExceeded" in result.detail
    else:  # SQLite has no index row limit: stored
        assert result.outcome is Outcome.DELIVERED


async def test_custom_fields_past_the_store_bound_are_refused_with_a_reason(store: FeedStore) -> None:
    """Once the store holds MAX_STORE_CUSTOM_FIELDS distinct custom fields, a record adding another is refused
    with a reason naming the bound; records using known fields still go in."""
    client = store_client(store)
    for start in range(0, MAX_STORE_CUSTOM_FIELDS, 100):
        custom = {f"f{index:04d}": 1 for index in range(start, start + 100)}
        result = await client.send(NO_CREDENTIALS, records(player(f"pl-{start}", custom=custom)))
        assert result.outcome is Outcome.DELIVERED
    refused = await client.send(NO_CREDENTIALS, records(player("pl-new", custom={"one_more": 1})))
    assert refused.outcome is Outcome.REJECT
    assert "custom field limit" in refused.detail
    assert "one_more" in refused.detail
    known = await client.send(NO_CREDENTIALS, records(player("pl-known", custom={"f0001": 2})))
    assert known.outcome is Outcome.DELIVERED
