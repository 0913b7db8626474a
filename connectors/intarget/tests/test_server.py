"""The feed server over a real store and a real listener: auth, parameters, encodings, windows, metrics."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from connectors.intarget.config import FeedSettings
from connectors.intarget.formats import FeedEncoder
from connectors.intarget.server import FeedServer
from connectors.intarget.store import FeedStore
from connectors.intarget.store_sqlite import SqliteStore
from connectors.intarget.tests.clock import ManualClock
from connectors.intarget.tests.test_store import player, records
from gateway.metrics import Metrics

PASSWORD = "feed-pass-s3cret"  # noqa: S105
TOKEN = "feed-token-s3cret"  # noqa: S105
WINDOW = "from=2026-05-28+20:00:00&to=2026-05-28+20:30:00"  # contains START


class Served:
    """A feed server on a free port over a SQLite store."""

    def __init__(self, server: FeedServer, store: FeedStore, registry: CollectorRegistry) -> None:
        self.server = server
        self.store = store
        self.registry = registry

    @property
    def url(self) -> str:
        """Base URL of the feeds."""
        return f"http://127.0.0.1:{self.server.port}/intarget"

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        """GET (with Basic auth unless headers are given)."""
        headers = headers if headers is not None else {"Authorization": basic("intarget", PASSWORD)}
        async with aiohttp.ClientSession() as session, session.get(self.url + path, headers=headers) as response:
            return response.status, await response.read(), dict(response.headers)


def basic(user: str, password: str) -> str:
    """An HTTP Basic header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def serve(tmp_path: Path, clock: ManualClock, **feed: Any) -> Served:
    """Start a server with the given feed settings."""
    settings = FeedSettings.model_validate({"listen": "127.0.0.1:0", "watermark_wait": 0.3, **feed})
    store = SqliteStore(tmp_path / "feeds.db", clock)
    await store.open()
    registry = CollectorRegistry()
    server = FeedServer("intarget", store, settings, Metrics(registry))
    await server.start()
    return Served(server, store, registry)


@pytest.fixture
async def served(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Served]:
    """Basic auth and a token; the clock 30 minutes past the stored rows."""
    running = await serve(tmp_path, clock, username="intarget", password=PASSWORD, token=TOKEN)
    await running.store.write(
        records(
            player("pl-1", first_name='Ann "the, best"', is_blocked=True,
                   custom={"level": 3, "tags2": ["a", "b"], "city": "x"}),
            {"event_id": "li-1", "type": "login", "occurred_at": "2026-03-01T10:00:00Z", "player_id": "p-1",
             "success": False},
        )
    )  # fmt: skip
    clock.advance(1800)
    yield running
    await running.server.stop()
    await running.store.close()


async def test_csv_parses_with_the_csv_module(served: Served) -> None:
    """CSV: a header row of the seed's names plus custom fields, RFC 4180 quoting, booleans as 1/0."""
    status, body, headers = await served.get(f"/players?{WINDOW}&format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    assert list(rows[0]) == [
        "id", "first_name", "last_name", "gender", "country", "city", "ip", "locale", "timezone", "birthday",
        "registered_at", "ref_code", "traffic_source", "user_agent", "modified_at", "is_blocked", "status",
        "self_excluded", "custom_city", "level", "tags2",
    ]  # fmt: skip
    assert rows[0]["first_name"] == 'Ann "the, best"' and rows[0]["is_blocked"] == "1"
    assert rows[0]["modified_at"] == "2026-05-28 20:26:40" and rows[0]["level"] == "3" and rows[0]["tags2"] == "a, b"
    assert rows[0]["custom_city"] == "x" and rows[0]["city"] == ""  # a custom field never shadows a seed column


async def test_json_is_an_array_with_typed_values(served: Served) -> None:
    """JSON: an array of objects; seed 1/0 flags as numbers, other booleans true/false, custom ints as numbers."""
    status, body, headers = await served.get(f"/logins?{WINDOW}&format=json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    logins = orjson.loads(body)
    assert logins == [
        {"id": "li-1", "player_id": "p-1", "ip": None, "created_at": "2026-03-01 10:00:00", "ref_code": None,
         "traffic_source": None, "user_agent": None, "host": None, "is_success": 0,
         "modified_at": "2026-05-28 20:26:40"}
    ]  # fmt: skip
    players = orjson.loads((await served.get(f"/players?{WINDOW}&format=json"))[1])
    assert players[0]["is_blocked"] is True and players[0]["level"] == 3


@pytest.mark.parametrize("space", ["+", "%20"])
async def test_space_as_plus_or_percent_20(served: Served, space: str) -> None:
    """`+` and `%20` both separate date and time."""
    window = WINDOW.replace("+", space)
    status, body, _ = await served.get(f"/logins?{window}&format=json")
    assert status == 200 and len(orjson.loads(body)) == 1


async def test_the_window_is_half_open(served: Served) -> None:
    """A row stamped exactly at `to` is not in the window; it is in the one starting there."""
    before = orjson.loads((await served.get("/logins?from=2026-05-28+20:00:00&to=2026-05-28+20:26:40&format=json"))[1])
    at = orjson.loads((await served.get("/logins?from=2026-05-28+20:26:40&to=2026-05-28+20:26:41&format=json"))[1])
    assert before == [] and len(at) == 1


async def test_brand_narrows_the_feed(served: Served) -> None:
    """`brand=` returns only that brand's rows."""
    assert len(orjson.loads((await served.get(f"/logins?{WINDOW}&format=json&brand=default"))[1])) == 1
    assert orjson.loads((await served.get(f"/logins?{WINDOW}&format=json&brand=other"))[1]) == []


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("/players?to=2026-05-28+20:30:00", "missing `from`"),
        ("/players?from=2026-05-28T20:00:00&to=2026-05-28+20:30:00", "`from` is not UTC"),
        ("/players?from=2026-05-28+20:30:00&to=2026-05-28+20:30:00", "`from` must be before `to`"),
        (f"/players?{WINDOW}&format=xml", "unknown format"),
        (f"/gamblers?{WINDOW}", "unknown feed"),
        ("/players?from=2026-05-28+20:00:00&to=2026-05-28+20:57:00", "ends in the future"),
    ],
    ids=["missing", "unparsable", "empty", "format", "feed", "future"],
)
async def test_bad_parameters_get_a_clear_400(served: Served, query: str, says: str) -> None:
    """A missing or unparsable window, from >= to, an unknown feed or format, a future end: 400 saying why."""
    status, body, _ = await served.get(query)
    assert status == 400 and says in body.decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("intarget", "wrong")},
        {"Authorization": basic("someone", PASSWORD)},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic"},
    ],
    ids=[
        "none",
        "wrong-password",
        "wrong-user",
        "wrong-token",
        "garbage",
        "bearer-no-token",
        "bearer-blank",
        "basic-empty",
    ],
)
async def test_wrong_or_missing_credentials_get_401_without_detail(served: Served, headers: dict[str, str]) -> None:
    """Every refusal is the same bare 401: it never says which part failed."""
    status, body, response_headers = await served.get(f"/players?{WINDOW}", headers=headers)
    assert (status, body) == (401, b"unauthorized\n")
    assert response_headers["WWW-Authenticate"] == 'Basic realm="intarget"'


@pytest.mark.parametrize("how", ["query", "bearer"])
async def test_the_token_works_as_query_or_bearer(served: Served, how: str) -> None:
    """`?token=` and `Authorization: Bearer` both authenticate."""
    if how == "query":
        status, _, _ = await served.get(f"/players?{WINDOW}&token={TOKEN}", headers={})
    else:
        status, _, _ = await served.get(f"/players?{WINDOW}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200


async def test_the_allow_list_refuses_other_addresses(tmp_path: Path, clock: ManualClock) -> None:
    """A peer outside the CIDRs gets a bare 403 even with good credentials; inside, it is served."""
    clock.advance(3600)
    for allow, expected in ((["10.1.0.0/16"], 403), (["10.1.0.0/16", "127.0.0.0/8"], 200)):
        running = await serve(tmp_path, clock, token=TOKEN, allow=allow)
        try:
            status, body, _ = await running.get(f"/logins?{WINDOW}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == expected
            if expected == 403:
                assert body == b"forbidden\n"
        finally:
            await running.server.stop()
            await running.store.close()


async def test_auth_none_serves_anyone(tmp_path: Path, clock: ManualClock) -> None:
    """With `auth: none` written explicitly, no credentials are needed."""
    clock.advance(3600)
    running = await serve(tmp_path, clock, auth="none")
    try:
        assert (await running.get(f"/logins?{WINDOW}", headers={}))[0] == 200
    finally:
        await running.server.stop()
        await running.store.close()


async def test_a_window_still_being_written_waits_then_503(served: Served) -> None:
    """While a write below `to` is uncommitted, the request waits (bounded) and answers 503 with Retry-After."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: Any, stamp: int) -> None:
        entered.set()
        await release.wait()

    writer = asyncio.create_task(served.store._transaction(slow, True))
    await entered.wait()
    status, _, headers = await served.get(f"/logins?{WINDOW}")
    release.set()
    await writer
    assert status == 503 and headers["Retry-After"] == "1"
    assert (await served.get(f"/logins?{WINDOW}"))[0] == 200


async def test_a_window_below_the_committed_clock_is_served_while_a_write_is_in_progress(served: Served) -> None:
    """A committed stamp past `to` proves every write below `to` committed: no wait behind the writer in progress."""
    await served.store.write(records(player("pl-2")))  # commits a stamp 30 minutes past WINDOW's end
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: Any, stamp: int) -> None:
        entered.set()
        await release.wait()

    writer = asyncio.create_task(served.store._transaction(slow, True))
    await entered.wait()
    try:
        status, body, _ = await served.get(f"/logins?{WINDOW}&format=json")
    finally:
        release.set()
        await writer
    assert status == 200
    assert [row["id"] for row in orjson.loads(body)] == ["li-1"]


async def test_feed_metrics_count_requests_rows_and_latency(served: Served) -> None:
    """feed_requests by status, feed_rows and the latency histogram move per feed."""
    await served.get(f"/logins?{WINDOW}")
    await served.get(f"/logins?{WINDOW}", headers={})
    value = served.registry.get_sample_value
    labels = {"destination": "intarget", "feed": "logins"}
    assert value("gateway_feed_requests_total", {**labels, "status": "200"}) == 1
    assert value("gateway_feed_requests_total", {**labels, "status": "401"}) == 1
    assert value("gateway_feed_rows_total", labels) == 1
    assert value("gateway_feed_request_duration_seconds_count", labels) == 2


async def test_the_poller_reads_closed_windows_only(served: Served, clock: ManualClock) -> None:
    """The InTarget-like poller reads each closed window once, keeps rows by id, and stops at the open one."""
    from connectors.intarget.tests.clock import START  # noqa: PLC0415
    from devkit.sandbox.intarget.poller import IntargetPoller  # noqa: PLC0415

    poller = IntargetPoller(served.url.removesuffix("/intarget"), START - 60, token=TOKEN, window=60)
    async with aiohttp.ClientSession() as session:
        assert await poller.poll(session, now=clock.now) == 2  # the player and the login
        assert poller.cursor == START + 1800  # 31 closed minutes read; the one ending after the clock is still open
        requests = poller.requests
        assert await poller.poll(session, now=clock.now) == 0 and poller.requests == requests
    assert list(poller.rows["logins"]) == ["li-1"] and poller.refused == 0


async def test_a_busy_writer_does_not_starve_feed_requests(served: Served) -> None:
    """Writes committing back to back (a backlog being caught up) still let each feed request through in turn."""
    stop = asyncio.Event()

    async def short(tx: Any, stamp: int) -> None:
        await asyncio.sleep(0.005)

    async def write_continuously() -> int:
        count = 0
        while not stop.is_set():
            await served.store._transaction(short, True)
            count += 1
        return count

    writer = asyncio.create_task(write_continuously())
    try:
        await asyncio.sleep(0.05)
        statuses = [(await served.get(f"/logins?{WINDOW}"))[0] for _ in range(5)]
    finally:
        stop.set()
        written = await writer
    assert written > 5  # the writer really was busy while the requests came in
    assert statuses == [200] * 5


@pytest.mark.parametrize(
    "header",
    [b"Basic \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe-token", b"Basic \xe2\x82\xac\x80\x81"],
    ids=["basic-utf8", "bearer-latin1", "basic-broken-utf8"],
)
async def test_a_non_ascii_authorization_header_gets_401_not_500(served: Served, header: bytes) -> None:
    """Bytes outside ASCII in Authorization (sent raw, as a hostile client would) are a refusal, not a crash."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    writer.write(
        b"GET /intarget/players?" + WINDOW.encode() + b" HTTP/1.1\r\nHost: feeds\r\nAuthorization: " + header
        + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] == b"401"


async def test_an_empty_token_query_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    """`?token=` with nothing after it never matches."""
    running = await serve(tmp_path, clock, token=TOKEN)
    try:
        status, _, _ = await running.get(f"/players?{WINDOW}&token=", headers={})
        assert status == 401
    finally:
        await running.server.stop()
        await running.store.close()


async def _serve_players(tmp_path: Path, clock: ManualClock, *events: dict[str, Any]) -> Served:
    running = await serve(tmp_path, clock, username="intarget", password=PASSWORD)
    await running.store.write(records(*events))
    clock.advance(1800)
    return running


async def test_csv_cells_and_header_names_that_would_run_as_formulas_are_neutralized(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Text cells and custom column names starting with =, +, -, @, tab or CR get a leading `'` (OWASP); phone
    numbers and numbers stay as they are; JSON carries the values unchanged."""
    formulas = {
        "first_name": "=HYPERLINK(\"http://evil\",\"x\")", "last_name": "+cmd|' /C calc'!A0",
        "city": "-2+3+cmd|' /C calc'!A0", "ref_code": "@SUM(1+1)", "traffic_source": "\tTAB", "user_agent": "\rCR",
    }  # fmt: skip
    custom = {"=evil": "x", "note": "@SUM(2)", "balance": -5, "phone_like": "+44 20 7946 0958"}
    running = await _serve_players(tmp_path, clock, player("pl-x", **formulas, phone="+44 20 7946 0958", custom=custom))
    try:
        _, body, _ = await running.get(f"/players?{WINDOW}&format=csv")
        (row,) = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        for field, value in formulas.items():
            assert row[field] == "'" + value
        assert row["'=evil"] == "x"
        assert row["note"] == "'@SUM(2)"
        assert row["balance"] == "-5"
        assert row["phone_like"] == "+44 20 7946 0958"
        _, body, _ = await running.get(f"/contacts?{WINDOW}&format=csv")
        (contact,) = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        assert contact["phone"] == "+44 20 7946 0958"
        players = orjson.loads((await running.get(f"/players?{WINDOW}&format=json"))[1])
        assert players[0]["first_name"] == formulas["first_name"] and players[0]["=evil"] == "x"
    finally:
        await running.server.stop()
        await running.store.close()


async def test_custom_fields_colliding_with_columns_get_unique_names(tmp_path: Path, clock: ManualClock) -> None:
    """Custom fields named `status` and `custom_status` (and `id`, `custom_id`, `custom_id_2`): every CSV column and
    JSON key is unique, each holding its own value."""
    custom = {"status": "s1", "custom_status": "s2", "id": "i1", "custom_id": "i2", "custom_id_2": "i3"}
    running = await _serve_players(tmp_path, clock, player("pl-c", status="vip", custom=custom))
    try:
        _, body, _ = await running.get(f"/players?{WINDOW}&format=csv")
        header = next(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        assert len(header) == len(set(header))
        (row,) = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        assert row["status"] == "vip" and row["id"] == "p-1"
        served_values = {row[name] for name in header[-len(custom) :]}
        assert served_values == set(custom.values())
        raw = (await running.get(f"/players?{WINDOW}&format=json"))[1]
        (obj,) = orjson.loads(raw)
        assert len(obj) == len(header)  # orjson keeps the last of duplicate keys: a lost column would show here
    finally:
        await running.server.stop()
        await running.store.close()


@pytest.mark.parametrize("form", ["csv", "json"])
async def test_rows_are_encoded_off_the_event_loop(served: Served, form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk is encoded in a worker thread, so a wide window cannot stall the loop that delivers events."""
    threads: list[int] = []
    original = FeedEncoder.csv_rows if form == "csv" else FeedEncoder.json_rows

    def recording(self: FeedEncoder, *args: Any) -> bytes:
        threads.append(threading.get_ident())
        return original(self, *args)

    monkeypatch.setattr(FeedEncoder, "csv_rows" if form == "csv" else "json_rows", recording)
    status, _, _ = await served.get(f"/players?{WINDOW}&format={form}")
    assert status == 200
    assert threads and threading.get_ident() not in threads
