"""The feed store on SQLite and PostgreSQL: idempotent upserts, partial merges, sessions, stamps, watermark, purge."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from connectors.intarget import connector
from connectors.intarget.store import FeedStore
from connectors.intarget.tests.clock import START, ManualClock
from gateway.connector import VendorRecord
from gateway.events import decode


def records(*events: dict[str, Any]) -> list[VendorRecord]:
    """The mapped records of events."""
    found: list[VendorRecord] = []
    for event in events:
        found += connector.map(decode(orjson.dumps(event)), connector.options_model())
    return found


def player(event_id: str, **fields: Any) -> dict[str, Any]:
    """A player event of p-1."""
    return {"event_id": event_id, "type": "player", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1", **fields}


def action(event_id: str, kind: str, amount: str, at: str, session: str = "s-1", **fields: Any) -> dict[str, Any]:
    """A gameround event of session `session`."""
    return {
        "event_id": event_id,
        "type": "gameround",
        "occurred_at": at,
        "player_id": "p-1",
        "round_id": event_id,
        "session_id": session,
        "game_id": "g5",
        "kind": kind,
        "amount": amount,
        "currency": "EUR",
        **fields,
    }


async def read(store: FeedStore, feed: str, start: int = 0, end: int = 2**40) -> list[dict[str, Any]]:
    """Every row of a feed in a window, as column → stored value."""
    from connectors.intarget.feeds import FEEDS  # noqa: PLC0415

    names = [*FEEDS[feed].names, *(["custom"] if feed == "players" else [])]
    rows: list[dict[str, Any]] = []
    async for chunk in store.rows(feed, start, end, None, 7):
        rows += [dict(zip(names, row, strict=True)) for row in chunk]
    return rows


def by_id(rows: Sequence[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    """Rows keyed by natural id."""
    return {row[key]: row for row in rows}


async def test_redelivery_changes_nothing(store: FeedStore, clock: ManualClock) -> None:
    """Writing the same events again later leaves every row and its modification stamp as it was."""
    batch = records(
        player("pl-1", first_name="Ann", email="a@example.com", auto_login_token="tok"),  # noqa: S106
        {"event_id": "d-1", "type": "deposit", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
         "transaction_id": "tx-1", "amount": "10", "currency": "EUR"},
        action("gr-1", "bet", "2.5", "2026-03-01T10:01:00Z"),
    )  # fmt: skip
    await store.write(batch)
    before = {feed: await read(store, feed) for feed in ("players", "contacts", "auto_logins", "transactions")}
    sessions = await read(store, "casino_sessions")
    clock.advance(60)
    await store.write(batch)
    after = {feed: await read(store, feed) for feed in ("players", "contacts", "auto_logins", "transactions")}
    assert after == before
    assert await read(store, "casino_sessions") == sessions
    assert sessions[0]["bet_count"] == 1


async def test_partial_player_updates_merge(store: FeedStore, clock: ManualClock) -> None:
    """An absent field keeps its value, an explicit null clears it, custom fields merge key by key."""
    await store.write(records(player("pl-1", first_name="Ann", city="Riga", registered_at="2026-01-01T00:00:00Z",
                                     custom={"level": 3, "tier": "gold"})))  # fmt: skip
    clock.advance(5)
    await store.write(records(player("pl-2", city=None, is_blocked=True, custom={"level": 4})))
    row = by_id(await read(store, "players"))["p-1"]
    assert row["first_name"] == "Ann" and row["city"] is None and row["is_blocked"] == 1
    assert row["registered_at"] == "2026-01-01 00:00:00"
    assert orjson.loads(row["custom"]) == {"level": ["int", "4"], "tier": ["string", "gold"]}
    assert row["modified_at"] == START + 5
    assert await store.custom_fields() == [("level", "int"), ("tier", "string")]


async def test_partial_updates_in_one_batch_apply_in_order(store: FeedStore) -> None:
    """Several updates of one player inside one batch end with the last value of each field."""
    await store.write(records(player("pl-1", first_name="A", city="X"), player("pl-2", first_name="B"),
                              player("pl-3", city=None)))  # fmt: skip
    row = by_id(await read(store, "players"))["p-1"]
    assert (row["first_name"], row["city"]) == ("B", None)
    assert row["registered_at"] == "2026-03-01 10:00:00"  # none given: the first sighting


async def test_stamps_are_store_time_and_never_decrease(store: FeedStore, clock: ManualClock) -> None:
    """A late event (old occurred_at) is stamped now; a clock stepping back never lowers a stamp."""
    await store.write(records(player("pl-1", first_name="A")))
    clock.advance(-30)
    await store.write(records({"event_id": "li-1", "type": "login", "occurred_at": "2020-01-01T00:00:00Z",
                               "player_id": "p-1"}))  # fmt: skip
    login = (await read(store, "logins"))[0]
    assert login["created_at"] == "2020-01-01 00:00:00"
    assert login["modified_at"] == START  # not 2020, and not below the earlier write's stamp
    assert login["is_success"] == 1


async def test_sessions_aggregate_across_batches_and_restamp(store: FeedStore, clock: ManualClock) -> None:
    """A session sums its actions across batches; a new action re-stamps it, a duplicate does not."""
    await store.write(records({"event_id": "ga-1", "type": "game", "occurred_at": "2026-03-01T09:00:00Z",
                               "game_id": "g5", "name": "Lucky Lion"}))  # fmt: skip
    await store.write(records(action("a1", "bet", "2.50", "2026-03-01T10:00:05Z", game_vendor="PARIPLAY"),
                              action("a2", "win", "10", "2026-03-01T10:00:09Z")))  # fmt: skip
    first = (await read(store, "casino_sessions"))[0]
    clock.advance(120)
    await store.write(
        records(
            action("a3", "bet", "0.10", "2026-03-01T09:59:00Z", is_bonus=True),
            action("a1", "bet", "2.50", "2026-03-01T10:00:05Z"),
        )
    )
    row = (await read(store, "casino_sessions"))[0]
    assert first["modified_at"] == START and row["modified_at"] == START + 120
    assert (row["bet_count"], row["win_count"]) == (2, 1)
    assert (row["bet_amount"], row["win_amount"]) == ("2.60", "10")
    assert (row["created_at"], row["updated_at"]) == ("2026-03-01 09:59:00", "2026-03-01 10:00:09")
    assert (row["game_name"], row["game_vendor"], row["balance_type"]) == ("Lucky Lion", "PARIPLAY", "Prize")
    clock.advance(60)
    await store.write(records(action("a2", "win", "10", "2026-03-01T10:00:09Z")))
    assert (await read(store, "casino_sessions"))[0]["modified_at"] == START + 120


async def test_transaction_status_updates_the_row(store: FeedStore, clock: ManualClock) -> None:
    """The same transaction_id moves from Process to Success; created_at stays the first sighting."""
    deposit = {"event_id": "d-1", "type": "deposit", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
               "transaction_id": "tx-1", "amount": "10", "currency": "EUR", "status": "pending"}  # fmt: skip
    await store.write(records(deposit))
    clock.advance(10)
    await store.write(
        records({**deposit, "event_id": "d-2", "status": "success", "occurred_at": "2026-03-01T10:05:00Z"})
    )
    row = by_id(await read(store, "transactions"))["tx-1"]
    assert (row["status"], row["dir"], row["type"]) == ("Success", "IN", "Normal")
    assert row["created_at"] == "2026-03-01 10:00:00" and row["updated_at"] == START + 10


async def test_sports_partial_snapshots_keep_known_values(store: FeedStore, clock: ManualClock) -> None:
    """A later bet update without event details keeps the sport event's title and tournament."""
    selection = {"selection_id": "sel-1", "event_id": "ev-1", "market": "1x2", "ratio": "1.85", "event_title": "A - B",
                 "event_status": "prematch", "event_start": "2026-03-02T18:00:00Z", "tournament_id": "t-1",
                 "tournament_name": "Cup", "tournament_start": "2026-03-01T00:00:00Z"}  # fmt: skip
    bet = {"event_id": "sb-1", "type": "sports_bet", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
           "bet_id": "b-1", "status": "accepted", "bet_type": "single", "stake": "5",
           "selections": [selection]}  # fmt: skip
    await store.write(records(bet))
    clock.advance(10)
    settled = {**bet, "event_id": "sb-2", "status": "win", "win_amount": "9.25",
               "selections": [{"selection_id": "sel-1", "event_id": "ev-1", "market": "1x2",
                               "status": "win"}]}  # fmt: skip
    await store.write(records(settled))
    event = by_id(await read(store, "sports_events"))["ev-1"]
    assert (event["title"], event["status"], event["tournament_id"]) == ("A - B", "prematch", "t-1")
    assert event["updated_at"] == START  # nothing about it changed
    odd = by_id(await read(store, "sports_odds"))["sel-1"]
    assert (odd["status"], odd["ratio"], odd["bet_id"], odd["updated_at"]) == ("win", "1.85", "b-1", START + 10)
    bet_row = by_id(await read(store, "sports_bets"))["b-1"]
    assert (bet_row["status"], bet_row["stake"], bet_row["win_amount"]) == ("win", "5", "9.25")
    assert by_id(await read(store, "sports_tournaments"))["t-1"]["name"] == "Cup"


async def test_watermark_waits_for_an_open_write(store: FeedStore, clock: ManualClock) -> None:
    """While a write transaction is open the watermark is not reached; once it commits, it is."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: Any, stamp: int) -> None:
        entered.set()
        await release.wait()

    writer = asyncio.create_task(store._transaction(slow, True))
    await entered.wait()
    assert await store.await_watermark(0.3) is False
    release.set()
    await writer
    assert await store.await_watermark(0.3) is True


async def test_retention_purges_old_rows(store: FeedStore, clock: ManualClock) -> None:
    """Rows older than their feed's retention go; other feeds and newer rows stay."""
    login = {"event_id": "li-1", "type": "login", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1"}
    await store.write(records(login, action("a1", "bet", "1", "2026-03-01T10:00:00Z")))
    clock.advance(3 * 86400)
    await store.write(
        records({"event_id": "li-2", "type": "login", "occurred_at": "2026-03-04T10:00:00Z", "player_id": "p-1"})
    )
    deleted = await store.purge({"logins": 2, "casino_sessions": 1})
    assert deleted == {"logins": 1, "casino_sessions": 1}
    assert [row["id"] for row in await read(store, "logins")] == ["li-2"]
    await store.write(records(action("a1", "bet", "1", "2026-03-01T10:00:00Z")))  # its action is gone too
    assert (await read(store, "casino_sessions"))[0]["bet_count"] == 1


async def test_two_postgres_writers_never_stamp_into_an_answered_window(clock: ManualClock) -> None:
    """Two stores (two replicas) write one PostgreSQL schema concurrently while a reader answers 200 consecutive
    closed windows: every row ends up in exactly the windows read, none lands in one already answered."""
    from connectors.intarget.store_postgres import PostgresStore  # noqa: PLC0415
    from connectors.intarget.tests.conftest import POSTGRES_URL, drop_schema, unique_schema  # noqa: PLC0415

    schema = unique_schema()
    replicas = [PostgresStore(f"{POSTGRES_URL}?schema={schema}", clock) for _ in range(2)]
    for replica in replicas:
        await replica.open()
    done = asyncio.Event()

    async def write(replica: FeedStore, name: str) -> None:
        count = 0
        while not done.is_set():
            await replica.write(records(*(
                {"event_id": f"{name}-{count}-{i}", "type": "login", "occurred_at": "2026-03-01T10:00:00Z",
                 "player_id": f"p-{i}"} for i in range(20)
            )))  # fmt: skip
            count += 1
            await asyncio.sleep(0)

    try:
        writers = [asyncio.create_task(write(replica, f"r{n}")) for n, replica in enumerate(replicas)]
        seen: dict[str, int] = {}
        start = int(clock.now)
        for second in range(200):
            clock.now = start + second + 1.5
            assert await replicas[second % 2].await_watermark(5)
            for row in await read(replicas[second % 2], "logins", start + second, start + second + 1):
                assert row["id"] not in seen
                seen[row["id"]] = row["modified_at"]
        done.set()
        await asyncio.gather(*writers)
        full = {row["id"]: row["modified_at"] for row in await read(replicas[0], "logins", start, start + 200)}
        assert len(seen) > 200 and seen == full
    finally:
        for replica in replicas:
            await replica.close()
        await drop_schema(schema)


async def test_one_batch_with_repeated_ids_applies_in_order(store: FeedStore, clock: ManualClock) -> None:
    """A large batch (one statement per table on PostgreSQL) holding the same ids several times ends as if applied
    one by one: the last status wins, created_at is the first sighting, a later null keeps a sports value."""
    deposits = [
        {"event_id": f"d-{n}", "type": "deposit", "occurred_at": f"2026-03-01T10:{n:02d}:00Z", "player_id": "p-1",
         "transaction_id": f"tx-{n % 4}", "amount": str(n), "currency": "EUR",
         "status": ("pending", "success", "failed")[n % 3]}
        for n in range(12)
    ]  # fmt: skip
    bets = [
        {"event_id": f"sb-{n}", "type": "sports_bet", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
         "bet_id": f"b-{n % 2}", "status": f"s{n}", "bet_type": "single", "stake": "5" if n < 2 else None}
        for n in range(10)
    ]  # fmt: skip
    await store.write(records(*deposits, *bets))
    transactions = by_id(await read(store, "transactions"))
    assert sorted(transactions) == ["tx-0", "tx-1", "tx-2", "tx-3"]
    assert (transactions["tx-0"]["amount"], transactions["tx-0"]["status"]) == ("8", "Fail")  # d-8: 8 % 3 == 2
    assert transactions["tx-0"]["created_at"] == "2026-03-01 10:00:00"  # d-0 saw it first
    sports = by_id(await read(store, "sports_bets"))
    assert (sports["b-0"]["status"], sports["b-0"]["stake"]) == ("s8", "5")
    assert (sports["b-1"]["status"], sports["b-1"]["stake"]) == ("s9", "5")


async def test_a_late_catalog_entry_names_unnamed_sessions(store: FeedStore, clock: ManualClock) -> None:
    """A session stored before its game was in the catalog gets the catalog's name (and is re-served); a session
    whose events named the game keeps that name."""
    named = action("a2", "bet", "1", "2026-03-01T10:00:00Z", session="s-2", game_name="Own Name")
    await store.write(records(action("a1", "bet", "1", "2026-03-01T10:00:00Z", session="s-1"), named))
    assert by_id(await read(store, "casino_sessions"), "session_id")["s-1"]["game_name"] == "unknown"
    clock.advance(30)
    await store.write(records({"event_id": "ga-1", "type": "game", "occurred_at": "2026-03-01T09:00:00Z",
                               "game_id": "g5", "name": "Lucky Lion"}))  # fmt: skip
    sessions = by_id(await read(store, "casino_sessions"), "session_id")
    assert (sessions["s-1"]["game_name"], sessions["s-1"]["modified_at"]) == ("Lucky Lion", START + 30)
    assert (sessions["s-2"]["game_name"], sessions["s-2"]["modified_at"]) == ("Own Name", START)
    clock.advance(30)
    await store.write(records(action("a3", "win", "1", "2026-03-01T10:01:00Z", session="s-1")))
    assert by_id(await read(store, "casino_sessions"), "session_id")["s-1"]["game_name"] == "Lucky Lion"


async def test_a_connection_broken_mid_operation_makes_the_store_unavailable(clock: ManualClock) -> None:
    """asyncpg's InternalClientError ("cannot switch to state 15; another operation is in progress") comes from a
    connection whose session was terminated in the middle of an operation: the store is unavailable (the batch is
    retried as an outage, reason store_unavailable), and the next write goes through on a fresh connection."""
    import asyncpg  # noqa: PLC0415

    from connectors.intarget.store import StoreUnavailable  # noqa: PLC0415
    from connectors.intarget.store_postgres import PostgresStore  # noqa: PLC0415
    from connectors.intarget.tests.conftest import POSTGRES_URL, drop_schema, unique_schema  # noqa: PLC0415

    schema = unique_schema()
    store = PostgresStore(f"{POSTGRES_URL}?schema={schema}", clock)
    await store.open()

    async def broken(transaction: object, stamp: int) -> None:
        raise asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress")

    try:
        with pytest.raises(StoreUnavailable, match="InternalClientError"):
            await store._transaction(broken, stamped=True)
        await store.write(records(player("e-1", country="DE")))
        assert [row["country"] for row in await read(store, "players")] == ["DE"]
    finally:
        await store.close()
        await drop_schema(schema)
