"""`gateway replay` for InTarget: the catch-all tenant routes every brand, only the store opens (no feed listener),
and a dead letter naming one vendor record re-sends that record and not its delivered siblings."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import message
from gateway import binding
from gateway.dlq import RECORD_HEADER
from gateway.events import decode
from gateway.replay import Replay
from gateway.replay_records import ReplaySelection
from tests.integration.harness import gateway_config

TOKEN = "replay-feed-token-0123456789"


def _player(event_id: str, player_id: str, brand: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "player",
        "occurred_at": "2026-11-01T12:00:00Z",
        "player_id": player_id,
        "brand": brand,
        "email": f"{player_id}@example.com",
        "country": "DE",
    }


def _login(event_id: str, player_id: str, brand: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "login",
        "occurred_at": "2026-11-01T12:00:00Z",
        "player_id": player_id,
        "brand": brand,
    }


async def _dead_letter(bootstrap: str, dlq: str, value: bytes, record_id: str | None = None) -> None:
    headers = [
        ("gateway-destination", b"intarget"),
        ("gateway-reason", b"rejected"),
        ("gateway-error", b"store refused the row"),
        ("gateway-status", b""),
        ("gateway-source", b"player-events/0/1"),
        ("gateway-failed-at", b"2026-11-01T12:00:01.000000Z"),
    ]
    if record_id is not None:
        headers.append((RECORD_HEADER, record_id.encode()))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(dlq, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


def _ids(path: Path, sql: str) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {str(row[0]) for row in connection.execute(sql)}


async def test_replay_into_the_store_routes_every_brand_opens_no_listener_and_sends_only_the_named_record(
    broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    """Brands without credentials reach the store through `*`; the feed port, taken by the running gateway, is not
    bound; a player event whose `contacts` record alone failed re-sends contacts and leaves `players` alone."""
    store = tmp_path / "intarget.db"
    with socket.socket() as taken:  # the running gateway's feed listener holds this port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        destination = {
            "name": "intarget",
            "connector": "intarget",
            "store": f"sqlite:///{store}",
            "feed": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
        }
        resolved = binding.parse(gateway_config(broker.bootstrap_servers, topic, [destination]), env={})
        dlq = resolved.gateway.kafka.dlq_topic
        login = _login("rl-1", "p-1", "brand-a")
        await _dead_letter(broker.bootstrap_servers, dlq, message(login)[1])
        player = _player("rp-1", "p-2", "brand-b")
        raw = message(player)[1]
        intarget = resolved.destination("intarget")
        records = intarget.connector.map(decode(raw), intarget.options)
        routes = {record.route: record.record_id for record in records}
        assert {"players", "contacts"} <= set(routes)  # the event maps to several records
        await _dead_letter(broker.bootstrap_servers, dlq, raw, routes["contacts"])
        replay = Replay(resolved, ReplaySelection("intarget"))
        summary = await asyncio.wait_for(replay.run(asyncio.Event()), 60)
    assert summary.delivered == 2 and summary.failed == 0
    assert _ids(store, "SELECT id FROM logins") == {"rl-1"}
    assert _ids(store, "SELECT player_id FROM contacts") == {"p-2"}
    assert _ids(store, "SELECT id FROM players") == set()  # delivered before; not re-sent
