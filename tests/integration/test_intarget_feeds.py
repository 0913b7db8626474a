"""InTarget end to end: events through the real broker into the feed store (SQLite and PostgreSQL), read back over
the feed server exactly as InTarget polls it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from connectors.intarget import connector
from connectors.intarget.feeds import FEEDS
from connectors.intarget.tests.clock import ManualClock
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.ports import free_port
from devkit.testbed.traffic import Traffic
from tests.integration.harness import gateway_config, produce, running_gateway
from tests.integration.intarget import (
    StoreBackend,
    csv_rows,
    fetch,
    intarget_destination,
    rows,
    settled,
    store_backend,
)

T0, T10, T20 = "2026-05-28 20:26:40", "2026-05-28 20:26:50", "2026-05-28 20:27:00"  # ManualClock's start, +10 s, +20 s


def at(minute: int) -> str:
    """An occurred_at on 2026-03-01."""
    return f"2026-03-01T10:{minute:02d}:00Z"


def base(event_id: str, event_type: str, minute: int = 0, **fields: Any) -> dict[str, Any]:
    """An event of player p-1."""
    return {"event_id": event_id, "type": event_type, "occurred_at": at(minute), "player_id": "p-1", **fields}


CATALOG = [{"event_id": "ga-1", "type": "game", "occurred_at": at(0), "game_id": "g5", "name": "Lucky Lion"}]
EVERY_FEED = [
    base("pl-1", "player", registered_at="2026-02-01T08:00:00Z", first_name="Ann", country="LV", is_blocked=False,
         email="ann@example.com", consent_email=True, phone="+37120000000", auto_login_token="auto-1",
         custom={"level": 3}),
    base("d-1", "deposit", 1, transaction_id="tx-1", amount="25.50", currency="EUR", status="pending", method="VISA"),
    base("d-2", "deposit", 2, transaction_id="tx-1", amount="25.50", currency="EUR", status="success", method="VISA"),
    base("w-1", "withdrawal", 3, transaction_id="tx-2", amount="5", currency="BTC", status="cancelled"),
    base("li-1", "login", 4, ip="71.35.116.25", host="mirror.example.com", brand="casino-b"),  # any brand is taken
    base("wa-1", "wallet", 5, wallet_id="w-1", balance="574.50", currency="EUR"),
    base("bo-1", "bonus", 6, assignment_id="as-1", bonus_id="welcome", bonus_name="Welcome Bonus", status="active"),
    base("gr-1", "gameround", 7, round_id="r-1", session_id="s-1", game_id="g5", kind="bet", amount="2.50",
         currency="EUR"),
    base("gr-2", "gameround", 8, round_id="r-1", session_id="s-1", game_id="g5", kind="win", amount="10",
         currency="EUR"),
    base("sb-1", "sports_bet", 9, bet_id="bet-1", status="accepted", bet_type="single", stake="4", currency="EUR",
         selections=[{"selection_id": "sel-1", "event_id": "ev-1", "market": "Match Result", "ratio": "3.6",
                      "event_title": "Bolivia - Peru", "event_status": "prematch", "event_type": "match",
                      "event_start": "2026-03-02T18:00:00Z", "tournament_id": "copa", "tournament_name": "Copa",
                      "tournament_start": "2026-03-01T00:00:00Z", "sport_id": "fb", "sport_name": "Football"}]),
]  # fmt: skip
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "players": {"p-1": {"first_name": "Ann", "country": "LV", "is_blocked": False,
                        "registered_at": "2026-02-01 08:00:00", "modified_at": T0, "level": 3}},
    "contacts": {"p-1": {"email": "ann@example.com", "email_subscribe": True, "phone": "+37120000000",
                         "created_at": "2026-03-01 10:00:00", "modified_at": T0}},
    "transactions": {"tx-1": {"amount": 25.5, "status": "Success", "dir": "IN", "type": "Normal",
                              "payment_system": "VISA", "created_at": "2026-03-01 10:01:00", "updated_at": T0},
                     "tx-2": {"status": "Fail", "dir": "OUT", "currency": "BTC"}},
    "logins": {"li-1": {"player_id": "p-1", "is_success": 1, "host": "mirror.example.com", "modified_at": T0}},
    "auto_logins": {"p-1": {"login_token": "auto-1", "updated_at": T0}},
    "wallets": {"w-1": {"balance": 574.5, "type": "Normal", "currency": "EUR", "modified_at": T0}},
    "bonus_assignments": {"as-1": {"bonus_id": "welcome", "active": 1, "used": 0, "modified_at": T0}},
    "bonuses": {"welcome": {"name": "Welcome Bonus", "modified_at": T0}},
    "casino_sessions": {"s-1": {"game_name": "Lucky Lion", "game_code": "g5", "bet_count": 1, "win_count": 1,
                                "bet_amount": 2.5, "win_amount": 10, "created_at": "2026-03-01 10:07:00",
                                "updated_at": "2026-03-01 10:08:00", "balance_type": "Normal", "modified_at": T0}},
    "sports_tournaments": {"copa": {"name": "Copa", "sport_name": "Football", "start_date": "2026-03-01 00:00:00"}},
    "sports_events": {"ev-1": {"tournament_id": "copa", "title": "Bolivia - Peru", "status": "prematch",
                               "type": "match", "updated_at": T0}},
    "sports_bets": {"bet-1": {"player_id": "p-1", "status": "accepted", "type": "single", "stake": 4}},
    "sports_odds": {"sel-1": {"bet_id": "bet-1", "event_id": "ev-1", "ratio": 3.6, "market": "Match Result"}},
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """The store on each backend."""
    async for found in store_backend(request.param, tmp_path):
        yield found


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The store clock of the in-process gateway, moved by the test."""
    manual = ManualClock()
    monkeypatch.setattr(connector, "clock", manual)
    return manual


def key_of(feed: str) -> str:
    """The natural id column of a feed."""
    return FEEDS[feed].key


async def test_every_feed_from_events_through_kafka(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend, clock: ManualClock
) -> None:
    """Each of the 13 feeds serves the rows its events build, with the seed's exact names, in CSV and JSON."""
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [intarget_destination(backend.url, port)])
    async with running_gateway(tree) as running:
        await produce(broker.bootstrap_servers, topic, CATALOG)
        await settled(running, len(CATALOG))
        await produce(broker.bootstrap_servers, topic, EVERY_FEED)
        await settled(running, len(CATALOG) + len(EVERY_FEED))
        clock.advance(10)
        for feed, expected in EXPECTED.items():
            header, from_csv = await csv_rows(port, feed, T0, T10)
            assert header == [*FEEDS[feed].names, *(["level"] if feed == "players" else [])], feed
            from_json = {row[key_of(feed)]: row for row in await rows(port, feed, T0, T10)}
            assert sorted(from_json) == sorted(expected) == sorted(row[key_of(feed)] for row in from_csv), feed
            for row_id, fields in expected.items():
                assert list(from_json[row_id]) == header, feed
                assert {name: from_json[row_id][name] for name in fields} == fields, (feed, row_id)
        by_brand = {
            brand: orjson.loads(await fetch(port, "logins", T0, T10, brand=brand)) for brand in ("casino-b", "default")
        }
        assert [row["id"] for row in by_brand["casino-b"]] == ["li-1"] and by_brand["default"] == []


async def test_merges_sessions_and_late_events_across_windows(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend, clock: ManualClock
) -> None:
    """Partial player updates merge; a touched session is re-served whole in the next window; a late event lands
    in the next window; and a window already read never gains rows (changed rows move to the newer window)."""
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [intarget_destination(backend.url, port)])
    session = {"round_id": "r-1", "session_id": "s-9", "game_id": "g5", "currency": "EUR", "game_name": "Lion"}
    async with running_gateway(tree) as running:
        first = [
            base("pl-1", "player", first_name="Ann", city="Riga", country="LV", custom={"tier": "gold"}),
            base("gr-1", "gameround", 1, kind="bet", amount="1.00", **session),
        ]
        await produce(broker.bootstrap_servers, topic, first)
        await settled(running, 2)
        clock.advance(10)
        window_1 = {feed: await rows(port, feed, T0, T10) for feed in ("players", "casino_sessions", "logins")}
        assert window_1["casino_sessions"][0]["bet_count"] == 1 and window_1["logins"] == []

        second = [
            base("pl-2", "player", 30, city=None, is_blocked=True, custom={"level": 2}),
            base("gr-2", "gameround", 31, kind="bet", amount="2.25", **session),
            base("gr-3", "gameround", 32, kind="win", amount="7", **session),
            {**base("li-late", "login"), "occurred_at": "2020-01-01T00:00:00Z"},  # years late
        ]
        await produce(broker.bootstrap_servers, topic, second)
        await settled(running, 6)
        clock.advance(10)
        window_2 = {feed: await rows(port, feed, T10, T20) for feed in ("players", "casino_sessions", "logins")}

        for feed, answered in window_1.items():  # re-read: rows that changed moved on; nothing new appeared
            assert all(row in answered for row in await rows(port, feed, T0, T10)), feed
        player = window_2["players"][0]
        assert (player["first_name"], player["city"], player["country"], player["is_blocked"]) == (
            "Ann", None, "LV", True,
        )  # fmt: skip
        assert (player["tier"], player["level"], player["modified_at"]) == ("gold", 2, T10)
        sessions = window_2["casino_sessions"]
        summary = [
            (s["session_id"], s["bet_count"], s["win_count"], s["bet_amount"], s["win_amount"]) for s in sessions
        ]
        assert summary == [("s-9", 2, 1, 3.25, 7)]
        assert (sessions[0]["created_at"], sessions[0]["updated_at"]) == ("2026-03-01 10:01:00", "2026-03-01 10:32:00")
        assert [(login["id"], login["created_at"], login["modified_at"]) for login in window_2["logins"]] == [
            ("li-late", "2020-01-01 00:00:00", T10),
        ]  # fmt: skip


POLLED = ("players", "transactions", "casino_sessions")


async def test_a_poller_reading_1000_closed_windows_misses_nothing(
    broker: EmbeddedBroker, topic: str, backend: StoreBackend, clock: ManualClock
) -> None:
    """A poller reads 1,000 consecutive one-second windows while events stream in; the union of what it read (the
    latest version of each row) equals a full read at the end: no row missed, none invented."""
    port = free_port()
    tree = gateway_config(broker.bootstrap_servers, topic, [intarget_destination(backend.url, port)])
    traffic = Traffic(seed=41, players=300, prefix="poll")
    events = [
        event for event in traffic.stream(6000) if event["type"] in ("player", "deposit", "withdrawal", "gameround")
    ]
    slices = [events[index : index + 150] for index in range(0, len(events), 150)]
    start = int(clock.now)
    seen: dict[str, dict[str, dict[str, Any]]] = {feed: {} for feed in POLLED}
    windows_with_rows = 0

    def text(second: int) -> str:
        from connectors.intarget.formats import stamp_text  # noqa: PLC0415

        return stamp_text(start + second)

    async def write_slowly() -> None:
        for part in slices:
            await produce(broker.bootstrap_servers, topic, part)
            await asyncio.sleep(0.15)

    async with running_gateway(tree) as running, aiohttp.ClientSession() as poller:
        producer = asyncio.create_task(write_slowly())
        for second in range(1000):
            if second == 900:  # everything is in before the last windows close
                await producer
                await settled(running, len(events), 120)
            clock.now = start + second + 1 + 0.5
            found = 0
            for feed in POLLED:
                for row in await rows(port, feed, text(second), text(second + 1), poller):
                    seen[feed][row[key_of(feed)]] = row
                    found += 1
            windows_with_rows += found > 0
        full = {
            feed: {row[key_of(feed)]: row for row in await rows(port, feed, text(0), text(1000))} for feed in POLLED
        }
    assert windows_with_rows >= 20  # writes really were spread over many windows while they were read
    for feed in POLLED:
        assert len(full[feed]) > 50, feed
        assert seen[feed] == full[feed], feed
