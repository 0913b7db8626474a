"""InTarget's required fields on both store backends and the feed server: never served null, never invented silently.

Each required field is always written, or served with a stated fallback, or its row is held back until an event
gives it (README, "Required fields"). The served golden fixtures (`golden_feeds/`) show the held rows appearing, in a
later window, once they are complete.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.intarget import connector
from connectors.intarget.feeds import FALLBACKS, FEEDS, HELD, REQUIRED
from connectors.intarget.store import FeedStore
from connectors.intarget.tests.clock import START, ManualClock
from connectors.intarget.tests.test_server import serve
from connectors.intarget.tests.test_store import read
from gateway.connector import VendorRecord
from gateway.events import decode

GOLDEN_FEEDS = sorted((Path(__file__).parent / "golden_feeds").glob("*.json"))
AT = "2026-03-01T10:00:00Z"
P = {"occurred_at": AT, "player_id": "p-1"}
# Every event type with only the fields the event contract requires (plus the auto-login token, so that feed has a
# row): what a producer may legitimately send, and so what the feeds must cope with.
MINIMAL: list[dict[str, Any]] = [
    {**P, "event_id": "pl", "type": "player", "auto_login_token": "tok"},
    {**P, "event_id": "dp", "type": "deposit", "transaction_id": "t-1", "amount": "5", "currency": "EUR"},
    {**P, "event_id": "wd", "type": "withdrawal", "transaction_id": "t-2", "amount": "5", "currency": "EUR"},
    {**P, "event_id": "li", "type": "login"},
    {**P, "event_id": "wl", "type": "wallet", "wallet_id": "w-1", "balance": "5", "currency": "EUR"},
    {**P, "event_id": "bn", "type": "bonus", "assignment_id": "a-1", "bonus_id": "b-1", "status": "active"},
    {**P, "event_id": "gr", "type": "gameround", "round_id": "r", "game_id": "g", "kind": "bet", "amount": "1",
     "currency": "EUR", "session_id": "s-1"},
    {"event_id": "gm", "type": "game", "occurred_at": AT, "game_id": "g"},
    {**P, "event_id": "sb", "type": "sports_bet", "bet_id": "bet", "status": "accepted", "bet_type": "single",
     "selections": [{"selection_id": "sel", "event_id": "ev", "market": "Winner"},
                    {"selection_id": "sel-2", "event_id": "ev-2", "market": "1x2", "tournament_id": "cup"}]},
]  # fmt: skip


def records(events: list[dict[str, Any]], options: dict[str, Any] | None = None) -> list[VendorRecord]:
    """The mapped records of events under these options."""
    parsed = connector.options_model.model_validate(options or {})
    return [record for event in events for record in connector.map(decode(orjson.dumps(event)), parsed)]


def served(row: dict[str, Any], feed: str) -> dict[str, Any]:
    """A row without its store-time stamp (the golden files hold no clock values)."""
    stamps = {column.name for column in FEEDS[feed].columns if column.kind == "stamp"}
    return {name: value for name, value in row.items() if name not in stamps}


def test_every_feed_lists_its_required_fields_and_each_is_served() -> None:
    """REQUIRED names every feed; its fields are served columns; fallbacks and holds are only for required fields."""
    assert set(REQUIRED) == set(FEEDS)
    for feed, names in REQUIRED.items():
        assert set(names) <= set(FEEDS[feed].names), feed
    assert {(feed, name) for feed, name in FALLBACKS} <= {(f, n) for f, names in REQUIRED.items() for n in names}
    assert {(f, n) for f, names in HELD.items() for n in names} <= {(f, n) for f, ns in REQUIRED.items() for n in ns}


@pytest.mark.parametrize("registered_at", ["first_seen", "hold"])
async def test_no_required_field_is_ever_served_null(store: FeedStore, clock: ManualClock, registered_at: str) -> None:
    """Events with only their contract's required fields fill every feed, and no served row has a required field
    null: incomplete sport events and tournaments are held back, and so are players under `registered_at: hold`."""
    await store.write(records(MINIMAL, {"registered_at": registered_at}))
    clock.advance(60)
    seen: dict[str, list[dict[str, Any]]] = {feed: await read(store, feed) for feed in FEEDS}
    for feed, rows in seen.items():
        for row in rows:
            missing = [name for name in REQUIRED[feed] if row[name] is None]
            assert not missing, (feed, row["id" if "id" in row else FEEDS[feed].key], missing)
    assert seen["sports_events"] == [] and seen["sports_tournaments"] == []  # none has its start date
    assert [row["id"] for row in seen["sports_odds"]] == ["sel", "sel-2"]  # the selections themselves are served
    assert [(row["id"], row["player_id"]) for row in seen["auto_logins"]] == [("p-1", "p-1")]
    players = seen["players"]
    if registered_at == "hold":
        assert players == []
    else:
        assert [row["registered_at"] for row in players] == ["2026-03-01 10:00:00"]  # the first sighting
    empty = {feed for feed, rows in seen.items() if not rows}
    assert empty == {"sports_events", "sports_tournaments", "contacts"} | (
        {"players"} if registered_at == "hold" else set()
    )


@pytest.mark.parametrize("path", GOLDEN_FEEDS, ids=[path.stem for path in GOLDEN_FEEDS])
async def test_served_golden_fixtures(store: FeedStore, clock: ManualClock, path: Path) -> None:
    """Each step's events, written at its own minute, make exactly the step's rows in that minute's window; and a
    window once answered never gains rows (a held row, once complete, appears in a later window; a changed row
    moves to the later window)."""
    case = orjson.loads(path.read_bytes())  # noqa: ASYNC240 - a small fixture file
    answered: list[dict[str, list[dict[str, Any]]]] = []
    for index, step in enumerate(case["steps"]):
        await store.write(records(step["events"], case.get("options")))
        clock.advance(60)
        start, end = START + 60 * index, START + 60 * (index + 1)
        window = {feed: [served(r, feed) for r in await read(store, feed, start, end)] for feed in step["served"]}
        assert window == step["served"], (path.name, index)
        answered.append(window)
    for index, step in enumerate(case["steps"]):
        start, end = START + 60 * index, START + 60 * (index + 1)
        again = {feed: [served(r, feed) for r in await read(store, feed, start, end)] for feed in step["served"]}
        for feed, rows in again.items():
            assert all(row in answered[index][feed] for row in rows), (path.name, index, feed, "a window gained rows")


async def test_the_feed_server_holds_incomplete_rows_and_serves_the_auto_login_id(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Over HTTP: the sports_events feed leaves out an event still missing its start date and serves it once it is
    known; auto_logins has the document's required `id` column, the player id."""
    running = await serve(tmp_path, clock, auth="none")
    try:
        await running.store.write(records(MINIMAL))
        clock.advance(1800)
        first = "from=2026-05-28+20:00:00&to=2026-05-28+20:30:00"
        status, body, _ = await running.get(f"/sports_events?{first}&format=json", headers={})
        assert (status, orjson.loads(body)) == (200, [])
        status, body, _ = await running.get(f"/auto_logins?{first}&format=csv", headers={})
        rows = list(csv.reader(io.StringIO(body.decode())))
        assert rows[0] == ["id", "player_id", "login_token", "updated_at"]
        assert rows[1][:3] == ["p-1", "p-1", "tok"]
        complete = {**MINIMAL[-1], "event_id": "sb-2",
                    "selections": [{"selection_id": "sel", "event_id": "ev", "market": "Winner", "tournament_id": "cup",
                                    "event_start": "2026-03-02T18:00:00Z"}]}  # fmt: skip
        await running.store.write(records([complete]))
        clock.advance(1800)
        status, body, _ = await running.get(f"/sports_events?{first}&format=json", headers={})
        assert (status, orjson.loads(body)) == (200, [])  # the answered window did not gain the row
        later = "from=2026-05-28+20:30:00&to=2026-05-28+21:00:00"
        status, body, _ = await running.get(f"/sports_events?{later}&format=json", headers={})
        (event,) = orjson.loads(body)
        assert (event["id"], event["tournament_id"], event["start_date"]) == ("ev", "cup", "2026-03-02 18:00:00")
        assert (event["title"], event["status"], event["type"]) == ("ev", "unknown", "match")  # stated fallbacks
    finally:
        await running.server.stop()
        await running.store.close()
